"""SAVSR blocks: progressive fusion residual block, RCAN pieces, scale-adaptive module,
and the reconstruction trunk that composes them.

Readings of the design where it leaves a detail open (chosen to be the natural one and to
match the published 11.48 M parameters):
- every conv named "conv" without a size is 3 x 3 with bias, except convs followed by
  BatchNorm (no bias) and the 1 x 1 convs the design names;
- RCAB: 3 x 3 conv, ReLU, 3 x 3 conv, channel attention (GAP, 1 x 1 C -> C/16, ReLU,
  1 x 1 C/16 -> C, sigmoid), plus the input; a residual group ends with a 3 x 3 conv;
- scale-adaptive module: all mask-branch convs are 3 x 3 (C -> C/4, C/4 -> C/4 twice, C/4 -> 1);
- reconstruction: one learned gamma per residual group (initialised to 1).
The official layout (``SAVSRConfig.layout``, the authors' released code) differs where its
weights show it: a scale-aware PFRB merges with its OSConv (N*C -> C), one shared gamma, and
the mask convs have biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SAVSRConfig
from .layers import ConvBN, GlobalAvgPool, conv1x1, conv3x3, lrelu
from .osconv import OSConv

__all__ = ["PFRB", "ChannelAttention", "RCAB", "ResidualGroup", "ScaleAdaptiveModule", "Reconstruction"]


def make_osconv(cfg: SAVSRConfig, in_channels: int | None = None) -> OSConv:
    """The OSConv every block uses, sized from the config: ``in_channels`` (default C) -> C."""
    c_in = in_channels or cfg.channels
    return OSConv(c_in, cfg.num_kernels, cfg.osconv_trunk(c_in), out_channels=cfg.channels)


class PFRB(nn.Module):
    """Progressive fusion residual block over ``branches`` features of C channels.

    Each branch: 3 x 3 conv + act; concat -> 1 x 1 conv NC -> C + act (shared base); if scale
    aware, base += act(OSConv(base)); each branch: concat(base, its feature) -> 3 x 3 conv
    2C -> C + act, plus that branch's input. Official layout: a scale-aware block's merge is an
    OSConv NC -> C + act (``merge`` is then an OSConv, ``refine`` None).
    """

    def __init__(self, cfg: SAVSRConfig, branches: int, scale_aware: bool) -> None:
        super().__init__()
        c = cfg.channels
        self.slope = cfg.negative_slope
        self.branch_in = nn.ModuleList(conv3x3(c, c) for _ in range(branches))
        osconv_merge = scale_aware and cfg.osconv_merge
        self.merge = make_osconv(cfg, branches * c) if osconv_merge else conv1x1(branches * c, c)
        self.refine = make_osconv(cfg) if scale_aware and not osconv_merge else None
        self.branch_out = nn.ModuleList(conv3x3(2 * c, c) for _ in range(branches))

    def forward(self, feats: list[Tensor], inv_scale: Tensor) -> list[Tensor]:
        s = self.slope
        mids = [lrelu(conv(f), s) for conv, f in zip(self.branch_in, feats)]
        cat = torch.cat(mids, dim=1)
        base = lrelu(self.merge(cat, inv_scale) if isinstance(self.merge, OSConv) else self.merge(cat), s)
        if self.refine is not None:
            base = base + lrelu(self.refine(base, inv_scale), s)
        return [
            lrelu(conv(torch.cat([base, m], dim=1)), s) + f
            for conv, m, f in zip(self.branch_out, mids, feats)
        ]


class ChannelAttention(nn.Module):
    """RCAN channel attention: x * sigmoid(conv(relu(conv(GAP(x)))))."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.pool = GlobalAvgPool()
        self.squeeze = conv1x1(channels, mid)
        self.excite = conv1x1(mid, channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pool(x)
        y = torch.sigmoid(self.excite(F.relu(self.squeeze(y), inplace=True)))
        return x * y


class RCAB(nn.Module):
    """Residual channel-attention block: x + CA(conv(relu(conv(x))))."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(F.relu(self.conv1(x), inplace=True))
        return x + self.attention(y)


class ResidualGroup(nn.Module):
    """RCAN residual group: x + conv(RCAB^n(x))."""

    def __init__(self, channels: int, blocks: int, reduction: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(RCAB(channels, reduction) for _ in range(blocks)))
        self.conv = conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.blocks(x))


class ScaleAdaptiveModule(nn.Module):
    """x + OSConv(x, scale) * mask(x); the mask branch pools by 2, so h and w must be even.

    mask = sigmoid(BN(conv(up2(relu(BN(conv(relu(BN(conv(pool2(relu(BN(conv(x)))))))))))))
    with the convs C -> C/4, C/4 -> C/4 (twice), C/4 -> 1, all 3 x 3, without bias (with bias in
    the official layout; folded with the BatchNorm like the rest by ``ConvBN.fuse``).
    """

    def __init__(self, cfg: SAVSRConfig) -> None:
        super().__init__()
        c = cfg.channels
        mid = max(1, c // cfg.sam_ratio)
        bias = cfg.mask_bias
        self.mask_in = ConvBN(c, mid, 3, bias=bias)
        self.mask_body = nn.ModuleList([ConvBN(mid, mid, 3, bias=bias), ConvBN(mid, mid, 3, bias=bias)])
        self.mask_out = ConvBN(mid, 1, 3, bias=bias)
        self.osconv = make_osconv(cfg)

    def mask(self, x: Tensor) -> Tensor:
        m = F.relu(self.mask_in(x), inplace=True)
        size = m.shape[-2:]
        m = F.avg_pool2d(m, 2)
        for layer in self.mask_body:
            m = F.relu(layer(m), inplace=True)
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.mask_out(m))

    def forward(self, x: Tensor, inv_scale: Tensor) -> Tensor:
        return x + self.osconv(x, inv_scale) * self.mask(x)


class Reconstruction(nn.Module):
    """From the aligned feature A: (residual group, scale-adaptive module, + gamma_g * A) per
    group, then a 3 x 3 conv, plus A: the feature R. One gamma for all groups in the official layout."""

    def __init__(self, cfg: SAVSRConfig) -> None:
        super().__init__()
        c, g = cfg.channels, cfg.residual_groups
        self.groups = nn.ModuleList(ResidualGroup(c, cfg.rcab_per_group, cfg.ca_reduction) for _ in range(g))
        self.adapt = nn.ModuleList(ScaleAdaptiveModule(cfg) for _ in range(g))
        self.gamma = nn.Parameter(torch.ones(1 if cfg.shared_gamma else g))
        self.conv = conv3x3(c, c)

    def forward(self, a: Tensor, inv_scale: Tensor) -> Tensor:
        x = a
        for i, (group, adapt) in enumerate(zip(self.groups, self.adapt)):
            x = adapt(group(x), inv_scale) + self.gamma[i if len(self.gamma) > 1 else 0] * a
        return self.conv(x) + a
