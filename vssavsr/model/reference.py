"""Straightforward ("literal", slow) forms of the operations SAVSR computes in a faster way.

Each function here is the textbook reading of the design; the network's fast path computes
the same value by an exact reformulation. Tests check both agree (fp32, relative error
<= 1e-5) and ``SAVSR.set_reference_mode(True)`` makes the whole network use these forms
(the "naive" benchmark).

- :func:`conv_bn_reference`: convolution then BatchNorm (unfused).
  Fast form: ``ConvBN.fuse`` folds the frozen BN into the convolution.
- :func:`osconv_reference`: per-sample loop; the input scaled by the input-channel attention,
  convolved with that sample's aggregated kernel, the output scaled by the output-channel
  attention. Fast form (``OSConv``): both attentions folded into the kernel, one grouped conv.
- :func:`local_filter_reference`: unfold 25 shifted copies of the feature and take the
  per-pixel weighted sum. Fast form: accumulate 25 shifted products, no copy.
- :func:`expert_mix_reference`: materialise every HR pixel's mixed compress and expand
  matrices (H * W * 2 * C^2 / r values). Fast form: mix the experts' outputs instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "conv_bn_reference",
    "osconv_reference",
    "local_filter_reference",
    "expert_mix_reference",
]


def conv_bn_reference(x: Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tensor:
    """BatchNorm(conv(x)), unfused."""
    return bn(conv(x))


def osconv_reference(
    x: Tensor,
    kernels: Tensor,
    kernel_att: Tensor,
    spatial_att: Tensor,
    in_att: Tensor,
    out_att: Tensor,
) -> Tensor:
    """Scale-attention convolution, one sample at a time, literally as described.

    Shapes: x (B, C, h, w); kernels (K, C', C, k, k); kernel_att (B, K) (softmaxed);
    spatial_att (B, k * k); in_att (B, C); out_att (B, C'). Zero padding k // 2, no bias.
    """
    k = kernels.shape[-1]
    outputs = []
    for b in range(x.shape[0]):
        weight = (kernel_att[b].view(-1, 1, 1, 1, 1) * kernels).sum(0)
        weight = weight * spatial_att[b].view(1, 1, k, k)
        xin = x[b : b + 1] * in_att[b].view(1, -1, 1, 1)
        y = F.conv2d(xin, weight, padding=k // 2)
        outputs.append(y * out_att[b].view(1, -1, 1, 1))
    return torch.cat(outputs, 0)


def local_filter_reference(feature: Tensor, filters: Tensor, size: int) -> Tensor:
    """Per-pixel ``size`` x ``size`` filtering by unfolding (replicate padding).

    ``filters`` (B, size * size * C, h, w) is tap-major: channel ``t * C + c`` is tap
    ``t = dy * size + dx`` for feature channel ``c``.
    """
    b, c, h, w = feature.shape
    p = size // 2
    cols = F.unfold(F.pad(feature, (p, p, p, p), mode="replicate"), size)
    cols = cols.view(b, c, size * size, h, w)
    taps = filters.view(b, size * size, c, h, w).transpose(1, 2)
    return (cols * taps).sum(2)


def expert_mix_reference(g: Tensor, route: Tensor, compress: Tensor, expand: Tensor) -> Tensor:
    """``expand_p(compress_p(g)) + g`` with the per-pixel matrices materialised.

    g (B, C, H, W); route (B or 1, E, H, W); compress (E, D, C); expand (E, C, D).
    compress_p = sum_e route[e, p] * compress[e], expand_p likewise, for every HR pixel p.
    """
    mc = torch.einsum("behw,edc->bhwdc", route, compress)
    me = torch.einsum("behw,ecd->bhwcd", route, expand)
    z = torch.einsum("bhwdc,bchw->bdhw", mc.expand(g.shape[0], -1, -1, -1, -1), g)
    out = torch.einsum("bhwcd,bdhw->bchw", me.expand(g.shape[0], -1, -1, -1, -1), z)
    return out + g
