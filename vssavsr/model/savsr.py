"""SAVSR: arbitrary-scale video super-resolution with a learned scale-adaptive architecture.

Pipeline for a window of T frames (B, T, 3, h, w) in [0, 1]:
reflect-pad h, w to even -> iterative bidirectional alignment (two recurrent window units)
-> pyramid fusion -> aligned feature A -> reconstruction (RCAN groups + scale-adaptive
modules) -> feature R -> crop A and R back to h x w -> spatio-temporal adaptive upsampler
-> 3 x 3 conv C -> 3 -> plus the bilinearly upsampled centre frame. Output: (B, 3, H, W),
not clamped.

Scales are per axis (sy = H / h, sx = W / w by default): [1, 4] is the trained range; (4, 8]
and (0, 1) run with a warning; anything else raises ValueError. Frames must be at least
``SAVSR.MIN_INPUT_SIZE`` (4) pixels on each side: the odd-size reflect pad needs >= 2 and
below 4 the 3 x 3 and 5 x 5 operators see mostly padding.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .alignment import BidirectionalAlignment, PyramidFusion
from .blocks import Reconstruction
from .config import SAVSRConfig, resolve_config
from .layers import ConvBN, conv3x3
from .upsampler import STAUpsampler, make_hr_grid, sample_lr

__all__ = ["SAVSR", "resolve_output"]

MAX_SCALE = 8.0
TRAINED_SCALE = (1.0, 4.0)


def _pair(value: Any, name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    try:
        a, b = value
        return float(a), float(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a pair (y, x), got {value!r}") from None


def _check_scale(s: float, axis: str) -> None:
    if not math.isfinite(s) or s <= 0 or s > MAX_SCALE:
        raise ValueError(
            f"SAVSR scale {axis}={s!r} is not supported: each axis must be in (0, {MAX_SCALE:g}] "
            f"(trained for [{TRAINED_SCALE[0]:g}, {TRAINED_SCALE[1]:g}])"
        )
    if not TRAINED_SCALE[0] <= s <= TRAINED_SCALE[1]:
        warnings.warn(
            f"SAVSR scale {axis}={s:.4g} is outside the trained range "
            f"[{TRAINED_SCALE[0]:g}, {TRAINED_SCALE[1]:g}]; quality may suffer",
            RuntimeWarning,
            stacklevel=3,
        )


def resolve_output(
    in_size: tuple[int, int], out_size: Sequence[int] | None, scale: Any
) -> tuple[tuple[int, int], tuple[float, float]]:
    """((H, W), (sy, sx)) from the input size and out_size and/or scale; validates both.

    Without out_size the output is floor(h * sy) x floor(w * sx) (the reference's sizing);
    without scale the scale is (H / h, W / w).
    """
    h, w = in_size
    if out_size is None and scale is None:
        raise ValueError("SAVSR needs out_size=(H, W) or scale=(sy, sx)")
    sy, sx = _pair(scale, "scale") if scale is not None else (float("nan"), float("nan"))
    if out_size is None:
        _check_scale(sy, "sy")
        _check_scale(sx, "sx")
        return (max(1, math.floor(h * sy + 1e-6)), max(1, math.floor(w * sx + 1e-6))), (sy, sx)
    try:
        oh, ow = (int(v) for v in out_size)
    except (TypeError, ValueError):
        raise ValueError(f"out_size must be a pair of ints (H, W), got {out_size!r}") from None
    if oh < 1 or ow < 1 or (oh, ow) != tuple(out_size):
        raise ValueError(f"out_size must be positive ints (H, W), got {out_size!r}")
    if scale is None:
        sy, sx = oh / h, ow / w
    _check_scale(sy, "sy")
    _check_scale(sx, "sx")
    return (oh, ow), (sy, sx)


def pad_to_even(frames: Tensor) -> Tensor:
    """Reflect-pad the last two dims of (B, T, C, h, w) at the bottom/right to even sizes."""
    b, t, c, h, w = frames.shape
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return frames
    padded = F.pad(frames.reshape(b * t, c, h, w), (0, pw, 0, ph), mode="reflect")
    return padded.view(b, t, c, h + ph, w + pw)


class SAVSR(nn.Module):
    """The SAVSR network. ``SAVSR()`` is the published configuration (11.48 M parameters).

    ``net(frames, out_size=(H, W), scale=None, offset=None)``: frames (B, T, 3, h, w) float in
    [0, 1] -> centre frame (B, 3, H, W). ``offset`` (oy, ox) shifts the sampling grid in LR
    pixels (for tiles and crops; see ``upsampler``). Training mode needs batch >= 2 for the
    OSConv trunk BatchNorm to learn (batch 1 falls back to running statistics with a warning).
    """

    MIN_INPUT_SIZE = 4

    def __init__(self, config: "SAVSRConfig | str | Mapping[str, Any] | None" = None) -> None:
        super().__init__()
        cfg = resolve_config(config)
        self.config = cfg
        self.alignment = BidirectionalAlignment(cfg)
        self.fusion = PyramidFusion(cfg)
        self.reconstruction = Reconstruction(cfg)
        self.upsampler = STAUpsampler(cfg)
        self.tail = conv3x3(cfg.channels, cfg.in_channels)

    @classmethod
    def from_config(cls, name_or_config: "SAVSRConfig | str | Mapping[str, Any] | None") -> "SAVSR":
        """Build from a name in NAMED_CONFIGS ("savsr", "savsr-s", "savsr-official"), a config or its dict."""
        return cls(resolve_config(name_or_config))

    def _check_frames(self, frames: Tensor) -> None:
        cfg = self.config
        if not isinstance(frames, Tensor) or frames.dim() != 5:
            raise ValueError(f"SAVSR expects frames of shape (B, T, C, h, w), got {getattr(frames, 'shape', type(frames))}")
        b, t, c, h, w = frames.shape
        if t != cfg.num_frames or c != cfg.in_channels:
            raise ValueError(
                f"SAVSR expects {cfg.num_frames} frames of {cfg.in_channels} channels, got shape {tuple(frames.shape)}"
            )
        if not frames.is_floating_point():
            raise ValueError(f"SAVSR expects floating-point frames in [0, 1], got {frames.dtype}")
        if min(h, w) < self.MIN_INPUT_SIZE:
            raise ValueError(
                f"SAVSR input frames must be at least {self.MIN_INPUT_SIZE}x{self.MIN_INPUT_SIZE}, got {h}x{w}"
            )

    def forward(
        self,
        frames: Tensor,
        out_size: Sequence[int] | None = None,
        scale: Any = None,
        offset: Sequence[float] | None = None,
    ) -> Tensor:
        self._check_frames(frames)
        b, t, _, h, w = frames.shape
        size, (sy, sx) = resolve_output((h, w), out_size, scale)
        oy, ox = _pair(offset, "offset") if offset is not None else (0.0, 0.0)
        inv_scale = frames.new_tensor([1.0 / sy, 1.0 / sx]).expand(b, 2)
        a, r = self.features(pad_to_even(frames), inv_scale)
        grid = make_hr_grid(size, (sy, sx), (oy, ox), frames.device)
        x = self.upsampler(r[..., :h, :w], a[..., :h, :w], grid)
        skip = sample_lr(frames[:, t // 2], grid, padding_mode="border")
        return self.tail(x) + skip.to(x.dtype)

    def features(self, frames: Tensor, inv_scale: Tensor) -> tuple[Tensor, Tensor]:
        """(A, R) at LR for even-sized frames: aligned feature and reconstructed feature."""
        a = self.fusion(self.alignment(frames, inv_scale), inv_scale)
        return a, self.reconstruction(a, inv_scale)

    def fuse_for_inference(self) -> "SAVSR":
        """Fold every frozen BatchNorm into its convolution (eval mode only); returns self.

        The state dict is unchanged; ``train()`` or loading weights drops the folded copies."""
        if self.training:
            raise RuntimeError("SAVSR.fuse_for_inference() needs eval mode: call net.eval() first")
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fuse()
        return self

    def for_inference(self, device: torch.device | str) -> "SAVSR":
        """Eval mode, BatchNorm folded, no gradients, on ``device``; channels-last on the CPU (1.13-1.15x per
        call there; not yet measured on CUDA, scripts/BENCHMARKS.md). Returns self."""
        device = torch.device(device)
        self.eval().fuse_for_inference().requires_grad_(False).to(device)
        if device.type == "cpu":
            self.use_channels_last()
        return self

    def use_channels_last(self) -> "SAVSR":
        """Store every convolution weight (and folded BatchNorm weight) channels-last, so that convolutions
        produce channels-last features; same results, faster on the CPU (scripts/BENCHMARKS.md). Returns self.
        ``Module.to(memory_format=...)`` cannot be used: OSConv candidates are 5-D, expert weights 3-D."""
        cl = torch.channels_last
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data = m.weight.data.contiguous(memory_format=cl)
            if isinstance(m, ConvBN) and m.fused_weight is not None:
                m.fused_weight = m.fused_weight.contiguous(memory_format=cl)
        return self

    def set_reference_mode(self, enabled: bool = True) -> "SAVSR":
        """Use the literal (slow) forms from ``reference`` everywhere: per-pixel expert matrices,
        the unfolded 5 x 5 filter, unfused BatchNorm, per-sample OSConv. Returns self."""
        for m in self.modules():
            if hasattr(m, "reference_mode"):
                m.reference_mode = bool(enabled)
        return self

    def extra_repr(self) -> str:
        return f"config={self.config}"
