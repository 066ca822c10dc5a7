"""Small layers shared by the SAVSR blocks: 3 x 3 conv helper, activation, conv + BatchNorm, global pooling.

:class:`GlobalAvgPool` computes every frame-wide average of the network (channel attention, OSConv routing).
Code that runs the network on part of a frame (tiled inference, ``vssavsr.engine.tiling``) sees each of its calls
through :func:`pooling_hook` and can replace the part's mean with the whole frame's.

:class:`ConvBN` is the only place BatchNorm appears. In training mode it is plain conv -> BN;
after :meth:`ConvBN.fuse` (eval only) it runs one convolution with the frozen BN folded in.
The state dict never changes (the folded weights are non-persistent buffers), so a fused
network saves and loads exactly like an unfused one.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import reference

__all__ = ["conv3x3", "conv1x1", "lrelu", "ConvBN", "BatchNorm2dAnyBatch", "GlobalAvgPool", "pooling_hook"]


def conv3x3(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    """3 x 3 convolution, stride 1, zero padding 1 (keeps the spatial size)."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)


def conv1x1(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    """1 x 1 convolution."""
    return nn.Conv2d(in_ch, out_ch, 1, bias=bias)


def lrelu(x: Tensor, slope: float = 0.2) -> Tensor:
    """LeakyReLU applied in place; only call it on a freshly computed tensor nobody else holds."""
    return F.leaky_relu(x, slope, inplace=True)


#: (module, input (B, C, H, W), its mean) -> the mean to use instead
PoolingHook = Callable[["GlobalAvgPool", Tensor, Tensor], Tensor]

_hook_state = threading.local()  # the hook of this thread (tiled inference may run in several at once)
_hooks_installed = 0  # in any thread; while 0, forward is the bare mean (nothing for torch.compile to trace)
_hooks_lock = threading.Lock()


class GlobalAvgPool(nn.Module):
    """The frame-wide average of a feature map: (B, C, H, W) -> (B, C, 1, 1), or (B, C) with ``keepdim=False``.

    Every frame-wide mean of the network is one of these modules (none is written as ``x.mean``), so that a hook
    installed with :func:`pooling_hook` sees each of them, in call order."""

    def __init__(self, keepdim: bool = True) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=(2, 3), keepdim=self.keepdim)
        if _hooks_installed:
            hook = getattr(_hook_state, "hook", None)
            if hook is not None:
                return hook(self, x, mean)
        return mean

    def extra_repr(self) -> str:
        return f"keepdim={self.keepdim}"


@contextmanager
def pooling_hook(hook: PoolingHook) -> Iterator[None]:
    """Within the block, every :class:`GlobalAvgPool` call of this thread returns ``hook(module, x, mean)``."""
    global _hooks_installed
    if getattr(_hook_state, "hook", None) is not None:
        raise RuntimeError("pooling_hook: a hook is already installed in this thread")
    with _hooks_lock:
        _hooks_installed += 1
    _hook_state.hook = hook
    try:
        yield
    finally:
        _hook_state.hook = None
        with _hooks_lock:
            _hooks_installed -= 1


class BatchNorm2dAnyBatch(nn.BatchNorm2d):
    """BatchNorm2d that tolerates one value per channel in training mode.

    The OSConv attention trunk normalises a (B, 16, 1, 1) tensor, which plain BatchNorm refuses
    to do in training mode when B = 1. Here that case falls back to the running statistics
    (exactly what eval mode does; the statistics are not updated) with a one-time warning.
    Train with batch >= 2 for the trunk statistics to learn. Eval mode is unaffected.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.numel() == x.shape[1] and self.running_mean is not None:
            warnings.warn(
                "SAVSR BatchNorm: training batch of 1 over a 1x1 map; using running statistics "
                "(train with batch >= 2 to update them)",
                RuntimeWarning,
                stacklevel=2,
            )
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


class ConvBN(nn.Module):
    """Convolution (zero padding k // 2) followed by BatchNorm, foldable for inference."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)
        self.bn = BatchNorm2dAnyBatch(out_ch)
        self.reference_mode = False
        self.register_buffer("fused_weight", None, persistent=False)
        self.register_buffer("fused_bias", None, persistent=False)

    @property
    def is_fused(self) -> bool:
        return self.fused_weight is not None

    def forward(self, x: Tensor) -> Tensor:
        if self.is_fused and not self.training and not self.reference_mode:
            return F.conv2d(x, self.fused_weight, self.fused_bias, padding=self.conv.padding)
        return reference.conv_bn_reference(x, self.conv, self.bn)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the frozen BN statistics and affine into one conv weight and bias (eval only)."""
        if self.training:
            raise RuntimeError("ConvBN.fuse() needs eval mode (BatchNorm statistics must be frozen)")
        bn = self.bn
        std = torch.sqrt(bn.running_var.float() + bn.eps)
        factor = bn.weight.float() / std
        weight = self.conv.weight.float() * factor.view(-1, 1, 1, 1)
        bias = self.conv.bias.float() if self.conv.bias is not None else torch.zeros_like(std)
        bias = (bias - bn.running_mean.float()) * factor + bn.bias.float()
        self.fused_weight = weight.to(self.conv.weight.dtype)
        self.fused_bias = bias.to(self.conv.weight.dtype)

    def unfuse(self) -> None:
        """Drop the folded weights (they would be stale after training or loading)."""
        self.fused_weight = None
        self.fused_bias = None

    def train(self, mode: bool = True) -> "ConvBN":
        if mode:
            self.unfuse()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.unfuse()
        super()._load_from_state_dict(*args, **kwargs)
