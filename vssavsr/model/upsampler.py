"""Spatio-temporal adaptive upsampler and the LR <-> HR coordinate mapping.

Coordinate mapping (shared with the bilinear skip and with tiling): HR pixel (i, j) samples
the LR frame at pixel-centre coordinates y = (i + 0.5) / sy - 0.5 + oy and
x = (j + 0.5) / sx - 0.5 + ox; its sub-pixel phase is ph = u - floor(u + 0.001) - 0.5 with
u = (i + 0.5) / sy + oy (and likewise for x).

Fast and exact reformulations (the literal forms are in ``reference``):
- the 5 x 5 per-pixel filter accumulates 25 shifted products instead of unfolding 25 copies;
- the expert mixture mixes the experts' outputs, sum_e r_e (W_e x), instead of building the
  per-pixel matrix (sum_e r_e W_e); the expand step is one conv over the C/r-channel tensor
  [r_1 z, ..., r_E z], so nothing proportional to H * W * C^2 (or to H * W * E * C) exists.
- the scale/phase embedding and the heads depend only on the HR position and the scale, so
  they are computed once (batch dimension 1) and broadcast over the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import reference
from .config import SAVSRConfig
from .layers import conv1x1

__all__ = ["HRGrid", "make_hr_grid", "sample_lr", "LocalFilter", "ExpertMixture", "STAUpsampler"]


@dataclass(frozen=True)
class HRGrid:
    """LR sampling coordinates and phases of every HR row and column (fp32, on the device)."""

    ys: Tensor  # (H,) LR pixel-centre y of each HR row
    xs: Tensor  # (W,) LR pixel-centre x of each HR column
    phase_y: Tensor  # (H,)
    phase_x: Tensor  # (W,)
    scale: tuple[float, float]  # (sy, sx)

    @property
    def size(self) -> tuple[int, int]:
        return self.ys.shape[0], self.xs.shape[0]

    def embedding_input(self, dtype: torch.dtype) -> Tensor:
        """(1, 4, H, W): [1/sx, 1/sy, ph(i), ph(j)] for every HR pixel."""
        h, w = self.size
        sy, sx = self.scale
        inv = self.ys.new_tensor([1.0 / sx, 1.0 / sy]).view(1, 2, 1, 1).expand(1, 2, h, w)
        py = self.phase_y.view(1, 1, h, 1).expand(1, 1, h, w)
        px = self.phase_x.view(1, 1, 1, w).expand(1, 1, h, w)
        return torch.cat([inv, py, px], dim=1).to(dtype)


def _axis(n_out: int, scale: float, offset: float) -> tuple[Tensor, Tensor]:
    """(LR coordinate, phase) of each of ``n_out`` HR positions, computed in float64."""
    u = (torch.arange(n_out, dtype=torch.float64) + 0.5) / scale + offset
    return u - 0.5, u - torch.floor(u + 0.001) - 0.5


def make_hr_grid(
    out_size: tuple[int, int], scale: tuple[float, float], offset: tuple[float, float], device: torch.device
) -> HRGrid:
    """The HR grid for output size (H, W), scale (sy, sx) and offset (oy, ox) in LR pixels."""
    ys, py = _axis(out_size[0], scale[0], offset[0])
    xs, px = _axis(out_size[1], scale[1], offset[1])
    f32 = dict(device=device, dtype=torch.float32)
    return HRGrid(ys.to(**f32), xs.to(**f32), py.to(**f32), px.to(**f32), (float(scale[0]), float(scale[1])))


def sample_lr(feature: Tensor, grid: HRGrid, shift: Tensor | None = None, padding_mode: str = "zeros") -> Tensor:
    """Bilinearly sample ``feature`` (B, C, h, w) at the HR grid (+ ``shift``, (1|B, 2, H, W) as
    (dx, dy) in LR pixels). ``zeros`` outside the frame, or ``border`` (edge clamp). Sampling runs
    in fp32 (fp16 normalised coordinates are too coarse); the result has ``feature``'s dtype."""
    b, _, h, w = feature.shape
    gy = (2.0 * grid.ys + 1.0) / h - 1.0
    gx = (2.0 * grid.xs + 1.0) / w - 1.0
    hh, ww = grid.size
    base = torch.stack([gx.view(1, ww).expand(hh, ww), gy.view(hh, 1).expand(hh, ww)], dim=-1).unsqueeze(0)
    if shift is not None:
        norm = base.new_tensor([2.0 / w, 2.0 / h])
        base = base + shift.float().permute(0, 2, 3, 1) * norm
    out = F.grid_sample(
        feature.float(), base.expand(b, hh, ww, 2), mode="bilinear", padding_mode=padding_mode, align_corners=False
    )
    return out.to(feature.dtype)


class LocalFilter(nn.Module):
    """S = per-pixel k x k filtering of R (replicate padding) with filters predicted from A by a
    1 x 1 conv C -> k*k*C + LeakyReLU(0.1). Filter channels are tap-major (t * C + c)."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.predict = conv1x1(channels, size * size * channels)
        self.reference_mode = False

    def forward(self, r: Tensor, a: Tensor) -> Tensor:
        filters = F.leaky_relu(self.predict(a), 0.1, inplace=True)
        if self.reference_mode:
            return reference.local_filter_reference(r, filters, self.size)
        return self.accumulate(r, filters)

    def accumulate(self, r: Tensor, filters: Tensor) -> Tensor:
        """sum_t filters[t] * shift_t(R): 25 shifted views of one padded copy, no unfolding."""
        k = self.size
        b, c, h, w = r.shape
        p = k // 2
        padded = F.pad(r, (p, p, p, p), mode="replicate")
        taps = filters.view(b, k * k, c, h, w)
        if torch.is_grad_enabled() and (taps.requires_grad or padded.requires_grad) and taps.dtype == padded.dtype:
            return _ShiftedTapSum.apply(taps, padded, k)
        return _shifted_tap_sum(taps, padded, k)


def _shifted(padded: Tensor, t: int, k: int, h: int, w: int) -> Tensor:
    dy, dx = divmod(t, k)
    return padded[..., dy : dy + h, dx : dx + w]


def _shifted_tap_sum(taps: Tensor, padded: Tensor, k: int) -> Tensor:
    """taps (B, k*k, C, h, w), padded (B, C, h + k - 1, w + k - 1) -> sum_t taps[:, t] * shift_t(padded)."""
    h, w = taps.shape[-2:]
    out = taps[:, 0] * _shifted(padded, 0, k, h, w)
    for t in range(1, k * k):
        out.addcmul_(taps[:, t], _shifted(padded, t, k, h, w))
    return out


class _ShiftedTapSum(torch.autograd.Function):
    """``_shifted_tap_sum`` with a backward that writes each gradient in place. Autograd's own backward
    of the 2 k^2 views zero-fills a full-size buffer per view: 14 % of a CPU training step."""

    @staticmethod
    def forward(ctx, taps: Tensor, padded: Tensor, k: int) -> Tensor:
        ctx.save_for_backward(taps, padded)
        ctx.k = k
        return _shifted_tap_sum(taps, padded, k)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        taps, padded = ctx.saved_tensors
        k = ctx.k
        h, w = taps.shape[-2:]
        grad_taps = grad_padded = None
        if ctx.needs_input_grad[0]:
            grad_taps = torch.empty_like(taps)
            for t in range(k * k):
                torch.mul(grad_out, _shifted(padded, t, k, h, w), out=grad_taps[:, t])
        if ctx.needs_input_grad[1]:
            grad_padded = torch.zeros_like(padded)
            for t in range(k * k):
                _shifted(grad_padded, t, k, h, w).addcmul_(taps[:, t], grad_out)
        return grad_taps, grad_padded, None


class ExpertMixture(nn.Module):
    """out = expand_p(compress_p(G)) + G with per-pixel mixtures of E experts.

    compress_p = sum_e r_e(p) Wc_e (C/ratio x C), expand_p = sum_e r_e(p) We_e (C x C/ratio), no bias.
    """

    def __init__(self, channels: int, experts: int, ratio: int) -> None:
        super().__init__()
        d = max(1, channels // ratio)
        self.compress = nn.Parameter(torch.empty(experts, d, channels))
        self.expand = nn.Parameter(torch.empty(experts, channels, d))
        self.reference_mode = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for e in range(self.compress.shape[0]):
            nn.init.kaiming_uniform_(self.compress.data[e], a=math.sqrt(5))
            nn.init.kaiming_uniform_(self.expand.data[e], a=math.sqrt(5))

    def forward(self, g: Tensor, route: Tensor) -> Tensor:
        if self.reference_mode:
            return reference.expert_mix_reference(g, route.to(g.dtype), self.compress, self.expand)
        e, d, c = self.compress.shape
        b, _, h, w = g.shape
        r = route.to(g.dtype).unsqueeze(2)  # (1|B, E, 1, H, W)
        z = F.conv2d(g, self.compress.reshape(e * d, c, 1, 1).to(g.dtype)).view(b, e, d, h, w)
        z = (z * r).sum(dim=1)  # (B, D, H, W)
        zr = (z.unsqueeze(1) * r).reshape(b, e * d, h, w)
        expand = self.expand.permute(1, 0, 2).reshape(c, e * d, 1, 1).to(g.dtype)
        return F.conv2d(zr, expand) + g


class STAUpsampler(nn.Module):
    """Spatio-temporal adaptive upsampler: (R, A) at LR -> HR feature (B, C, H, W).

    1. S = LocalFilter(R, A). 2. Per HR pixel, [1/sx, 1/sy, ph(i), ph(j)] -> 1 x 1 layers
    4 -> E -> E (ReLU) -> heads: expert routing (sigmoid), spatial offset (2), temporal offset (2).
    3. G = R sampled at the HR grid + spatial offset (bilinear, zeros outside). 4. Expert mixture.
    5. S sampled with the temporal offset, concat with the mixture output, 1 x 1 conv 2C -> C.
    Offset heads start at zero (sampling starts on the exact grid); offsets are (dx, dy).
    """

    def __init__(self, cfg: SAVSRConfig) -> None:
        super().__init__()
        c, e = cfg.channels, cfg.embed_channels
        self.local_filter = LocalFilter(c, cfg.filter_size)
        self.embed = nn.Sequential(conv1x1(4, e), nn.ReLU(inplace=True), conv1x1(e, e), nn.ReLU(inplace=True))
        self.route_head = conv1x1(e, cfg.num_experts)
        self.spatial_head = conv1x1(e, 2)
        self.temporal_head = conv1x1(e, 2)
        self.experts = ExpertMixture(c, cfg.num_experts, cfg.expert_ratio)
        self.fuse = conv1x1(2 * c, c)
        for head in (self.spatial_head, self.temporal_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, r: Tensor, a: Tensor, grid: HRGrid) -> Tensor:
        s = self.local_filter(r, a)
        emb = self.embed(grid.embedding_input(self.embed[0].weight.dtype))
        route = torch.sigmoid(self.route_head(emb))
        g = sample_lr(r, grid, self.spatial_head(emb))
        mixed = self.experts(g, route)
        st = sample_lr(s, grid, self.temporal_head(emb))
        return self.fuse(torch.cat([mixed, st.to(mixed.dtype)], dim=1))
