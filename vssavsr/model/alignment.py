"""Iterative bidirectional alignment (two recurrent window units) and pyramid fusion.

No optical flow: a recurrent unit looks at a sub-window of frames (a centre and its
neighbours) plus the previous hidden state. One unit runs backward over the centres
(T-1-r, ..., r), a second with its own weights forward (r, ..., T-1-r), r = sub_window // 2,
each starting from a zero hidden state. The two hidden states at each centre are concatenated
(backward first, 2C). Pyramid fusion then reduces the list of 2C features to the aligned
feature A (C channels).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import PFRB
from .config import SAVSRConfig
from .layers import conv3x3, lrelu

__all__ = ["RecurrentWindowUnit", "BidirectionalAlignment", "PyramidFusionStage", "PyramidFusion"]


class RecurrentWindowUnit(nn.Module):
    """(centre frame, neighbour frames, hidden) -> new hidden state (C channels).

    Centre: 3 x 3 conv 3 -> C + act; neighbours stacked: 3 x 3 conv 3(n-1) -> C + act; the three
    features go through ``recurrent_blocks`` 3-branch PFRBs (the first without OSConv), then
    concat -> 3 x 3 conv 3C -> C (no activation).
    """

    def __init__(self, cfg: SAVSRConfig) -> None:
        super().__init__()
        c, rgb = cfg.channels, cfg.in_channels
        self.slope = cfg.negative_slope
        self.centre = conv3x3(rgb, c)
        self.neighbours = conv3x3(rgb * (cfg.sub_window - 1), c)
        self.blocks = nn.ModuleList(PFRB(cfg, 3, scale_aware=i > 0) for i in range(cfg.recurrent_blocks))
        self.merge = conv3x3(3 * c, c)

    def forward(self, centre: Tensor, neighbours: Tensor, hidden: Tensor, inv_scale: Tensor) -> Tensor:
        feats = [lrelu(self.centre(centre), self.slope), lrelu(self.neighbours(neighbours), self.slope), hidden]
        for block in self.blocks:
            feats = block(feats, inv_scale)
        return self.merge(torch.cat(feats, dim=1))


class BidirectionalAlignment(nn.Module):
    """frames (B, T, 3, h, w) -> list of T - sub_window + 1 features (B, 2C, h, w)."""

    def __init__(self, cfg: SAVSRConfig) -> None:
        super().__init__()
        self.channels = cfg.channels
        self.radius = cfg.sub_window // 2
        self.backward_unit = RecurrentWindowUnit(cfg)
        self.forward_unit = RecurrentWindowUnit(cfg)

    def sub_window(self, frames: Tensor, p: int) -> tuple[Tensor, Tensor]:
        """(centre frame (B, 3, h, w), neighbours stacked on channels (B, 3(n-1), h, w))."""
        r = self.radius
        others = [frames[:, i] for i in range(p - r, p + r + 1) if i != p]
        return frames[:, p], torch.cat(others, dim=1)

    def run(self, unit: RecurrentWindowUnit, frames: Tensor, order: list[int], inv_scale: Tensor) -> dict[int, Tensor]:
        b, _, _, h, w = frames.shape
        hidden = frames.new_zeros(b, self.channels, h, w)
        states = {}
        for p in order:
            hidden = unit(*self.sub_window(frames, p), hidden, inv_scale)
            states[p] = hidden
        return states

    def forward(self, frames: Tensor, inv_scale: Tensor) -> list[Tensor]:
        centres = list(range(self.radius, frames.shape[1] - self.radius))
        back = self.run(self.backward_unit, frames, centres[::-1], inv_scale)
        fwd = self.run(self.forward_unit, frames, centres, inv_scale)
        return [torch.cat([back[p], fwd[p]], dim=1) for p in centres]


class PyramidFusionStage(nn.Module):
    """``fusion_window`` features (2C each) -> one 2C feature.

    Per position a 3 x 3 conv 2C -> C + act (separate weights), ``fusion_blocks`` scale-aware
    PFRBs over the positions, concat -> 3 x 3 conv (window * C) -> 2C.
    """

    def __init__(self, cfg: SAVSRConfig) -> None:
        super().__init__()
        c, n = cfg.channels, cfg.fusion_window
        self.slope = cfg.negative_slope
        self.reduce = nn.ModuleList(conv3x3(2 * c, c) for _ in range(n))
        self.blocks = nn.ModuleList(PFRB(cfg, n, scale_aware=True) for _ in range(cfg.fusion_blocks))
        self.merge = conv3x3(n * c, 2 * c)

    def forward(self, feats: list[Tensor], inv_scale: Tensor) -> Tensor:
        feats = [lrelu(conv(f), self.slope) for conv, f in zip(self.reduce, feats)]
        for block in self.blocks:
            feats = block(feats, inv_scale)
        return self.merge(torch.cat(feats, dim=1))


class PyramidFusion(nn.Module):
    """List of 2C features -> aligned feature A (C channels).

    Each stage slides its window over the list (shared weights within a stage), shrinking it by
    fusion_window - 1; with the default T = 7 there is one stage (5 -> 1). Then a 3 x 3 conv
    2C -> C + act.
    """

    def __init__(self, cfg: SAVSRConfig) -> None:
        super().__init__()
        self.window = cfg.fusion_window
        self.slope = cfg.negative_slope
        self.stages = nn.ModuleList(PyramidFusionStage(cfg) for _ in range(cfg.fusion_stages))
        self.out = conv3x3(2 * cfg.channels, cfg.channels)

    def forward(self, feats: list[Tensor], inv_scale: Tensor) -> Tensor:
        n = self.window
        for stage in self.stages:
            feats = [stage(feats[i : i + n], inv_scale) for i in range(len(feats) - n + 1)]
        return lrelu(self.out(feats[0]), self.slope)
