"""The project's one checkpoint format: a safetensors file (no pickle, nothing executes on load).
``load_checkpoint`` also reads the authors' released weights (a ``.pth`` file, see ``official``).

Tensors: the network's state dict (floating tensors optionally cast, e.g. to fp16).
Metadata (safetensors string map, JSON values):
- ``vssavsr_format``: ``"savsr"``
- ``vssavsr_format_version``: ``"1"``
- ``vssavsr_config``: ``SAVSRConfig.to_dict()`` as JSON
- ``vssavsr_metadata``: the caller's metadata dict as JSON (training step, data, ...)

Every way a file can be unusable raises :class:`CheckpointError` whose ``kind`` and message say
which: ``missing``, ``not_safetensors``, ``truncated``, ``not_checkpoint``, ``version``,
``config``, ``architecture``; for ``.pth`` files also ``unsafe`` (a pickle that asks to run code)
and ``not_torch``. ``key`` names the entry at fault when there is one.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .config import SAVSRConfig
from .savsr import SAVSR

__all__ = ["FORMAT_VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint"]

FORMAT_NAME = "savsr"
FORMAT_VERSION = 1
_KEY_FORMAT = "vssavsr_format"
_KEY_VERSION = "vssavsr_format_version"
_KEY_CONFIG = "vssavsr_config"
_KEY_META = "vssavsr_metadata"
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A file that cannot be loaded as a vssavsr checkpoint; ``kind`` says why, ``key`` which entry
    (the first missing, unexpected or mis-shaped key, the tensor a truncated file cuts) when known."""

    def __init__(self, path: "str | os.PathLike[str]", kind: str, detail: str, key: str | None = None) -> None:
        self.path = str(path)
        self.kind = kind
        self.key = key
        super().__init__(f"{self.path}: {detail}")


def save_checkpoint(
    net: SAVSR,
    path: "str | os.PathLike[str]",
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``net``'s weights, config and ``metadata`` (JSON-able) to ``path`` (atomically).

    ``dtype`` casts floating tensors (e.g. torch.float16 for shipped weights); None keeps them.
    """
    from safetensors.torch import save_file

    if not isinstance(getattr(net, "config", None), SAVSRConfig):
        raise TypeError(f"save_checkpoint expects a SAVSR network, got {type(net).__name__}")
    try:
        meta_json = json.dumps(metadata or {})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {exc}") from None
    tensors = {}
    for name, value in net.state_dict().items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[name] = value.contiguous()
    header = {
        _KEY_FORMAT: FORMAT_NAME,
        _KEY_VERSION: str(FORMAT_VERSION),
        _KEY_CONFIG: json.dumps(net.config.to_dict()),
        _KEY_META: meta_json,
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.chmod(tmp, 0o666 & ~_umask())  # safetensors writes 0600; a shared checkpoint should be readable
    os.replace(tmp, path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check the safetensors header; distinguishes foreign and truncated files."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(path, "not_safetensors", f"not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", head)
        first = f.read(1)
        if n == 0 or n > _MAX_HEADER or first != b"{":
            hint = "; a PyTorch file? the official SAVSR weights load from a file named *.pth" if head[:2] in (b"PK", b"\x80\x02") else ""
            raise CheckpointError(path, "not_safetensors", "not a safetensors file (no valid header)" + hint)
        if 8 + n > size:
            raise CheckpointError(path, "truncated", f"truncated safetensors file (header needs {8 + n} bytes, file has {size})")
        raw = first + f.read(n - 1)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(path, "not_safetensors", "not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "not_safetensors", "not a safetensors file (header is not a JSON object)")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        raise CheckpointError(path, "truncated", f"truncated safetensors file (expected {expected} bytes, file has {size})")
    return header


def _read_info(path: Path) -> tuple[SAVSRConfig, dict[str, Any]]:
    """(config, metadata) of one of our safetensors checkpoints, from its header; raises CheckpointError."""
    if not path.is_file():
        raise CheckpointError(path, "missing", "checkpoint file not found")
    meta = _read_header(path).get("__metadata__") or {}
    if meta.get(_KEY_FORMAT) != FORMAT_NAME or _KEY_VERSION not in meta or _KEY_CONFIG not in meta:
        raise CheckpointError(path, "not_checkpoint", "a safetensors file but not a vssavsr checkpoint (no format/config metadata)")
    version = meta[_KEY_VERSION]
    if version != str(FORMAT_VERSION):
        raise CheckpointError(path, "version", f"unsupported checkpoint format version {version!r} (this vssavsr reads {FORMAT_VERSION})")
    try:
        config = SAVSRConfig.from_dict(json.loads(meta[_KEY_CONFIG]))
        user = json.loads(meta.get(_KEY_META, "{}"))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(path, "config", f"invalid configuration in checkpoint: {exc}") from None
    return config, user


def key_mismatch(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]) -> dict[str, list[str]]:
    """What keeps a state dict (key -> shape) from loading into a network: its ``missing``, ``unexpected`` and
    ``mis-shaped`` keys, in the order of ``expected`` and then ``found``; empty when it fits."""
    groups = {
        "missing": [k for k in expected if k not in found],
        "unexpected": [k for k in found if k not in expected],
        "mis-shaped": [k for k in found if k in expected and tuple(found[k]) != tuple(expected[k])],
    }
    return {label: keys for label, keys in groups.items() if keys}


def _check_architecture(path: Path, net: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    mismatch = key_mismatch({k: tuple(v.shape) for k, v in tensors.items()}, expected)
    if not mismatch:
        return
    parts = []
    for label, keys in mismatch.items():
        keys = sorted(keys)
        shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
        parts.append(f"{label} keys: {shown}")
    raise CheckpointError(path, "architecture", "architecture mismatch with its config: " + "; ".join(parts))


def load_checkpoint(path: "str | os.PathLike[str]", map_location: "str | torch.device" = "cpu") -> tuple[SAVSR, dict[str, Any]]:
    """Build the network stored in ``path``: returns (net in eval mode on map_location, metadata).

    ``path`` is our safetensors checkpoint, or (named ``*.pth``) the authors' released weights
    (``official.load_official``: config read from the shapes, metadata naming the source file)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix.lower() == ".pth":
        from .official import load_official

        net, user = load_official(path)
        return net.to(map_location).eval(), user
    config, user = _read_info(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type for malformed files
        raise CheckpointError(path, "not_safetensors", f"not a readable safetensors file: {exc}") from None
    net = SAVSR(config)
    _check_architecture(path, net, tensors)
    net.load_state_dict(tensors, strict=True)
    return net.to(map_location).eval(), user
