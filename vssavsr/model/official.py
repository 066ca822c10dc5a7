"""The authors' released SAVSR weights (their ``savsr_best.pth``): read into a SAVSRConfig and our network.

The release stores ``torch.save({"params": state_dict})`` (BasicSR's layout; some BasicSR files hold
``params_ema``, preferred when both are present; a bare state dict is accepted too) of the network
in the official layout (``SAVSRConfig.layout == "official"``). The file is read with
``torch.load(weights_only=True)`` (``torchfile``): a pickle that asks to run code is refused.

Keys map to ours by structure (``official_names``); values are copied exactly, except three exact
re-arrangements where our modules store the same numbers in another order:
- the upsampler's filter predictor: the official output channel ``c * k*k + t`` is our ``t * C + c``;
- the upsampler's fusion conv: the official input is [temporal feature, expert output], ours the reverse;
- the expert matrices drop their trailing 1 x 1.
The configuration is read from the shapes, then every key and shape is checked against the layout
that configuration builds: anything else raises CheckpointError naming the first missing, unexpected
or mis-shaped key. The scale-adaptive mask convs' biases in front of BatchNorm stay parameters
(the literal mode computes conv + bias, then BatchNorm, as the official code does);
``fuse_for_inference`` folds them, with the BatchNorm, into the convolution.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from .checkpoint import CheckpointError, key_mismatch
from .config import SAVSRConfig
from .osconv import OSConv
from .savsr import SAVSR
from .torchfile import TorchFileError, load_weights

__all__ = [
    "ENTRIES",
    "load_official",
    "official_state_dict",
    "from_official_state_dict",
    "infer_config",
    "official_names",
    "file_sha256",
]

#: Where BasicSR files keep the network, in order of preference.
ENTRIES = ("params_ema", "params")

# ours -> official, applied in order to "key." (a trailing dot, so that rules can match whole names)
_MODULE_RULES: list[tuple[str, str]] = [
    (r"^alignment\.backward_unit\.", "f2p_win."),
    (r"^alignment\.forward_unit\.", "p2f_win."),
    (r"^fusion\.stages\.0\.", "h_win.0."),
    (r"^fusion\.out\.", "h_win_conv_h."),
    (r"^(f2p_win|p2f_win)\.centre\.", r"\1.conv_c."),
    (r"^(f2p_win|p2f_win)\.neighbours\.", r"\1.conv_sup."),
    (r"\.blocks\.(\d+)\.branch_in\.", r".blocks.\1.conv0."),
    (r"\.blocks\.(\d+)\.branch_out\.", r".blocks.\1.conv2."),
    (r"^h_win\.0\.reduce\.", "h_win.0.conv_h."),
    (r"^reconstruction\.gamma\.$", "gamma."),
    (r"^reconstruction\.groups\.(\d+)\.blocks\.(\d+)\.conv1\.", r"RG.\1.residual_group.\2.rcab.0."),
    (r"^reconstruction\.groups\.(\d+)\.blocks\.(\d+)\.conv2\.", r"RG.\1.residual_group.\2.rcab.2."),
    (r"^reconstruction\.groups\.(\d+)\.blocks\.(\d+)\.attention\.squeeze\.", r"RG.\1.residual_group.\2.rcab.3.attention.1."),
    (r"^reconstruction\.groups\.(\d+)\.blocks\.(\d+)\.attention\.excite\.", r"RG.\1.residual_group.\2.rcab.3.attention.3."),
    (r"^reconstruction\.groups\.(\d+)\.conv\.", r"RG.\1.conv."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_in\.conv\.", r"adapt.\1.mask.0."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_in\.bn\.", r"adapt.\1.mask.1."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_body\.0\.conv\.", r"adapt.\1.mask.4."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_body\.0\.bn\.", r"adapt.\1.mask.5."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_body\.1\.conv\.", r"adapt.\1.mask.7."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_body\.1\.bn\.", r"adapt.\1.mask.8."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_out\.conv\.", r"adapt.\1.mask.11."),
    (r"^reconstruction\.adapt\.(\d+)\.mask_out\.bn\.", r"adapt.\1.mask.12."),
    (r"^reconstruction\.adapt\.(\d+)\.osconv\.", r"adapt.\1.adapt."),
    (r"^reconstruction\.conv\.", "conv_last."),
    (r"^upsampler\.local_filter\.predict\.", "upsample.kernel_conv.0."),
    (r"^upsampler\.embed\.", "upsample.body."),
    (r"^upsampler\.route_head\.", "upsample.routing.0."),
    (r"^upsampler\.spatial_head\.", "upsample.offset."),
    (r"^upsampler\.temporal_head\.", "upsample.st_offset."),
    (r"^upsampler\.experts\.compress\.$", "upsample.weight_compress."),
    (r"^upsampler\.experts\.expand\.$", "upsample.weight_expand."),
    (r"^upsampler\.fuse\.", "upsample.fusion."),
]
# inside an OSConv: ours -> official
_OSCONV_RULES: list[tuple[str, str]] = [
    (r"^route\.", "scale_routing."),
    (r"^trunk\.conv\.", "attention.fc."),
    (r"^trunk\.bn\.", "attention.bn."),
    (r"^in_att\.", "attention.channel_fc."),
    (r"^out_att\.", "attention.filter_fc."),
    (r"^spatial_att\.", "attention.spatial_fc."),
    (r"^kernel_att\.", "attention.kernel_fc."),
]


def _apply(rules: list[tuple[str, str]], text: str) -> str:
    for pattern, repl in rules:
        text = re.sub(pattern, repl, text)
    return text


def official_names(net: SAVSR) -> dict[str, str]:
    """Our state-dict key -> the official one, for a network built with the official layout."""
    if net.config.layout != "official":
        raise ValueError(f"official_names needs a network with layout='official', got {net.config.layout!r}")
    osconvs = sorted((name for name, m in net.named_modules() if isinstance(m, OSConv)), key=len, reverse=True)
    names = {}
    for key in net.state_dict():
        owner = next((p for p in osconvs if key.startswith(p + ".")), None)
        if owner is None:
            names[key] = _apply(_MODULE_RULES, key + ".")[:-1]
            continue
        outer = _apply(_MODULE_RULES, owner + ".")
        outer = re.sub(r"\.blocks\.(\d+)\.merge\.$", r".blocks.\1.osconv.", outer)  # the PFRB merge is the OSConv
        names[key] = outer + _apply(_OSCONV_RULES, key[len(owner) + 1 :])
    for key, name in names.items():  # a 1 x 1 PFRB merge (the first block of a recurrent unit)
        names[key] = re.sub(r"\.blocks\.(\d+)\.merge\.", r".blocks.\1.conv1.", name)
    return names


# --- exact re-arrangements (ours <-> official) for the few keys that need one ------------------


def _filter_to_ours(t: Tensor, cfg: SAVSRConfig) -> Tensor:
    taps = cfg.filter_size**2
    return t.reshape(cfg.channels, taps, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


def _filter_to_official(t: Tensor, cfg: SAVSRConfig) -> Tensor:
    taps = cfg.filter_size**2
    return t.reshape(taps, cfg.channels, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


def _swap_fusion_inputs(t: Tensor, cfg: SAVSRConfig) -> Tensor:
    c = cfg.channels
    return torch.cat([t[:, c:], t[:, :c]], dim=1)


def _drop_1x1(t: Tensor, cfg: SAVSRConfig) -> Tensor:
    return t.reshape(t.shape[:3])


def _add_1x1(t: Tensor, cfg: SAVSRConfig) -> Tensor:
    return t.reshape(*t.shape, 1, 1)


_TO_OURS: dict[str, Callable[[Tensor, SAVSRConfig], Tensor]] = {
    "upsampler.local_filter.predict.weight": _filter_to_ours,
    "upsampler.local_filter.predict.bias": _filter_to_ours,
    "upsampler.fuse.weight": _swap_fusion_inputs,
    "upsampler.experts.compress": _drop_1x1,
    "upsampler.experts.expand": _drop_1x1,
}
_TO_OFFICIAL: dict[str, Callable[[Tensor, SAVSRConfig], Tensor]] = {
    "upsampler.local_filter.predict.weight": _filter_to_official,
    "upsampler.local_filter.predict.bias": _filter_to_official,
    "upsampler.fuse.weight": _swap_fusion_inputs,
    "upsampler.experts.compress": _add_1x1,
    "upsampler.experts.expand": _add_1x1,
}


def official_state_dict(net: SAVSR) -> dict[str, Tensor]:
    """``net``'s weights in the official layout and key names (the inverse of ``from_official_state_dict``)."""
    cfg = net.config
    names = official_names(net)
    out = {}
    for key, value in net.state_dict().items():
        convert = _TO_OFFICIAL.get(key)
        out[names[key]] = (convert(value, cfg) if convert else value).detach().clone()
    return out


# --- reading the configuration from the shapes ----------------------------------------------------


def _error(path: Any, detail: str, key: str | None = None) -> CheckpointError:
    return CheckpointError(path, "architecture", f"not an official SAVSR layout: {detail}", key=key)


def _shape(sd: Mapping[str, Any], key: str, path: Any) -> tuple[int, ...]:
    if key not in sd:
        raise _error(path, f"missing key {key!r}", key)
    return tuple(sd[key].shape)


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    found = [int(m.group(1)) for k in sd if (m := re.match(pattern, k))]
    return max(found) + 1 if found else 0


def infer_config(sd: Mapping[str, Any], path: Any = "<state dict>") -> SAVSRConfig:
    """The SAVSRConfig (official layout) whose network has the shapes of state dict ``sd``."""
    c, rgb = _shape(sd, "f2p_win.conv_c.weight", path)[:2]  # anchors in the release's key order
    sup = _shape(sd, "f2p_win.conv_sup.weight", path)[1]
    sub_window = sup // rgb + 1
    _shape(sd, "h_win.0.conv_h.0.weight", path)
    fusion_window = _count(sd, r"^h_win\.0\.conv_h\.(\d+)\.")
    squeeze = _shape(sd, "RG.0.residual_group.0.rcab.3.attention.1.weight", path)[0]
    mask_mid = _shape(sd, "adapt.0.mask.0.weight", path)[0]
    num_kernels = _shape(sd, "adapt.0.adapt.weight", path)[0]
    trunk = _shape(sd, "adapt.0.adapt.attention.fc.weight", path)[0]
    experts, bottleneck = _shape(sd, "upsample.weight_compress", path)[:2]
    embed = _shape(sd, "upsample.body.0.weight", path)[0]
    taps = _shape(sd, "upsample.kernel_conv.0.weight", path)[0] // max(c, 1)
    values = dict(
        channels=c,
        in_channels=rgb,
        sub_window=sub_window,
        fusion_window=fusion_window,
        num_frames=fusion_window + sub_window - 1,
        recurrent_blocks=_count(sd, r"^f2p_win\.blocks\.(\d+)\."),
        fusion_blocks=_count(sd, r"^h_win\.0\.blocks\.(\d+)\."),
        residual_groups=_count(sd, r"^RG\.(\d+)\."),
        rcab_per_group=_count(sd, r"^RG\.0\.residual_group\.(\d+)\."),
        ca_reduction=c // max(squeeze, 1),
        num_kernels=num_kernels,
        # the official trunk is max(16, in // 16) wide; 16 cannot be read back when in // 16 >= 16
        osconv_hidden=trunk if trunk > c // 16 else min(16, trunk),
        sam_ratio=c // max(mask_mid, 1),
        num_experts=experts,
        expert_ratio=c // max(bottleneck, 1),
        embed_channels=embed,
        filter_size=math.isqrt(taps),
        layout="official",
    )
    try:
        return SAVSRConfig(**values)
    except ValueError as exc:
        raise _error(path, f"its shapes give no valid configuration ({exc})") from None


# --- loading --------------------------------------------------------------------------------------


def _check_layout(path: Any, sd: Mapping[str, Any], expected: dict[str, tuple[int, ...]]) -> None:
    mismatch = key_mismatch({k: tuple(v.shape) for k, v in sd.items()}, expected)
    if not mismatch:
        return
    parts = []
    for label, keys in mismatch.items():
        detail = f"{label} key {keys[0]!r}"
        if label == "mis-shaped":
            detail += f" (shape {tuple(sd[keys[0]].shape)}, expected {expected[keys[0]]})"
        if len(keys) > 1:
            detail += f" and {len(keys) - 1} more"
        parts.append(detail)
    raise _error(path, "; ".join(parts), next(iter(mismatch.values()))[0])


def from_official_state_dict(sd: Mapping[str, Any], path: Any = "<state dict>") -> SAVSR:
    """Our network (eval mode, CPU) holding the official-layout state dict ``sd``; raises CheckpointError."""
    for key, value in sd.items():
        if not isinstance(value, Tensor):
            raise _error(path, f"key {key!r} holds a {type(value).__name__}, not a tensor", key)
    cfg = infer_config(sd, path)
    net = SAVSR(cfg)
    names = official_names(net)
    ours = net.state_dict()
    expected = {}
    for key, name in names.items():
        convert = _TO_OFFICIAL.get(key)
        expected[name] = tuple(convert(ours[key], cfg).shape if convert else ours[key].shape)
    _check_layout(path, sd, expected)
    state = {}
    for key, name in names.items():
        convert = _TO_OURS.get(key)
        value = sd[name]
        state[key] = convert(value, cfg) if convert else value
    net.load_state_dict(state, strict=True)
    return net.eval()


def _strip_module(sd: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds to every key (BasicSR drops it too)."""
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _pick_state_dict(path: Path, obj: Any) -> tuple[Mapping[str, Any], str | None]:
    if isinstance(obj, Mapping):
        for entry in ENTRIES:
            if isinstance(obj.get(entry), Mapping):
                return _strip_module(obj[entry]), entry
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return _strip_module(obj), None
        found = ", ".join(map(repr, list(obj)[:6])) or "nothing"
    else:
        found = f"a {type(obj).__name__}"
    raise CheckpointError(
        path, "not_checkpoint",
        f"a PyTorch file but not SAVSR weights: expected {{'params_ema' or 'params': state dict}} or a state dict, found {found}",
    )


def file_sha256(path: "str | os.PathLike[str]") -> str:
    """SHA-256 of a file's bytes (hex), read in blocks: the one file hash of the package."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_official(path: "str | os.PathLike[str]") -> tuple[SAVSR, dict[str, Any]]:
    """(network in eval mode on the CPU, metadata) from an official release file; raises CheckpointError.

    The metadata names the source: ``source`` ("official SAVSR release"), ``source_file``,
    ``source_sha256`` and ``source_entry`` (``params_ema``, ``params`` or None for a bare state dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "missing", "checkpoint file not found")
    try:
        obj = load_weights(path)
    except TorchFileError as exc:
        entry, _, key = (exc.entry or "").partition("/")
        raise CheckpointError(path, exc.kind, str(exc), key=(key if entry in ENTRIES else exc.entry) or None) from None
    sd, entry = _pick_state_dict(path, obj)
    net = from_official_state_dict(sd, path)
    meta = {
        "source": "official SAVSR release",
        "source_file": path.name,
        "source_sha256": file_sha256(path),
        "source_entry": entry,
    }
    return net, meta
