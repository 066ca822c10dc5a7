"""Scale-attention convolution (OSConv): a 3 x 3, C -> C' conv whose kernel is built per sample.

Routing: MLP over [1/sy, 1/sx, global-average-pool(x)] (C + 2 -> 2C -> C, ReLU after each).
Trunk: 1 x 1 conv C -> hidden (no bias), BatchNorm, ReLU. Four 1 x 1 heads (with bias):
input-channel attention (C, sigmoid), output-channel attention (C', sigmoid), spatial attention
over the k x k taps (sigmoid) and kernel attention over the candidates (softmax). C' = C except
in the official layout's PFRB merge (N*C -> C).

Per sample b: W_b = spatial_b * sum_k kernel_att_b[k] * W_k; y_b = out_b * conv(in_b * x_b, W_b).
Both channel attentions are linear per channel and the conv has no bias, so the fast path folds
them into W_b (exact) and runs one grouped convolution (groups = batch); no rescaled copies of
the feature map are made. ``reference.osconv_reference`` is the literal per-sample form.
Candidates use Kaiming-normal (fan_out) initialisation; there is no conv bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import reference
from .layers import ConvBN, GlobalAvgPool

__all__ = ["OSConv"]


class OSConv(nn.Module):
    """Scale- and content-conditioned dynamic convolution, C -> C' (``out_channels``, default C),
    zero padding k // 2.

    ``forward(x, inv_scale)``: x (B, C, h, w); inv_scale (B, 2) = [1/sy, 1/sx].
    The trunk BatchNorm needs batch >= 2 to learn in training mode (see BatchNorm2dAnyBatch).
    """

    def __init__(self, channels: int, num_kernels: int = 8, hidden: int = 16, kernel_size: int = 3,
                 out_channels: int | None = None):
        super().__init__()
        c, co = channels, out_channels or channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(num_kernels, co, c, kernel_size, kernel_size))
        self.pool = GlobalAvgPool(keepdim=False)
        self.route = nn.Sequential(nn.Linear(c + 2, 2 * c), nn.ReLU(inplace=True), nn.Linear(2 * c, c), nn.ReLU(inplace=True))
        self.trunk = ConvBN(c, hidden, 1, bias=False)
        self.in_att = nn.Conv2d(hidden, c, 1)
        self.out_att = nn.Conv2d(hidden, co, 1)
        self.spatial_att = nn.Conv2d(hidden, kernel_size * kernel_size, 1)
        self.kernel_att = nn.Conv2d(hidden, num_kernels, 1)
        self.reference_mode = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for k in range(self.weight.shape[0]):
            nn.init.kaiming_normal_(self.weight.data[k], mode="fan_out", nonlinearity="relu")

    def attentions(self, x: Tensor, inv_scale: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(kernel_att (B, K), spatial_att (B, k*k), in_att (B, C), out_att (B, C))."""
        pooled = self.pool(x)
        v = self.route(torch.cat([inv_scale.to(pooled.dtype), pooled], dim=1))
        t = F.relu(self.trunk(v[:, :, None, None]), inplace=True)
        kernel_att = torch.softmax(self.kernel_att(t).flatten(1), dim=1)
        spatial_att = torch.sigmoid(self.spatial_att(t).flatten(1))
        in_att = torch.sigmoid(self.in_att(t).flatten(1))
        out_att = torch.sigmoid(self.out_att(t).flatten(1))
        return kernel_att, spatial_att, in_att, out_att

    def sample_kernels(self, kernel_att: Tensor, spatial_att: Tensor, in_att: Tensor, out_att: Tensor) -> Tensor:
        """Per-sample kernels (B, C', C, k, k) with all four attentions folded in."""
        k_count, co, c, k, _ = self.weight.shape
        b = kernel_att.shape[0]
        w = (kernel_att @ self.weight.reshape(k_count, -1).to(kernel_att.dtype)).view(b, co, c, k, k)
        return w * (out_att.view(b, co, 1, 1, 1) * in_att.view(b, 1, c, 1, 1)) * spatial_att.view(b, 1, 1, k, k)

    def forward(self, x: Tensor, inv_scale: Tensor) -> Tensor:
        atts = self.attentions(x, inv_scale)
        if self.reference_mode:
            return reference.osconv_reference(x, self.weight, *atts)
        w = self.sample_kernels(*atts).to(x.dtype)
        b, c, h, wd = x.shape
        co = w.shape[1]
        pad = self.kernel_size // 2
        if b == 1:
            return F.conv2d(x, w[0], padding=pad)
        y = F.conv2d(x.reshape(1, b * c, h, wd), w.reshape(b * co, c, *w.shape[-2:]), padding=pad, groups=b)
        return y.view(b, co, h, wd)
