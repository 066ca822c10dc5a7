"""Give a network non-trivial BatchNorm statistics and sampling offsets, so that folding and sampling are exercised
(a freshly built SAVSR has identity statistics and zero offsets)."""

from __future__ import annotations

import torch


@torch.no_grad()
def randomise_batchnorm(net: torch.nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)


@torch.no_grad()
def randomise_offsets(net: torch.nn.Module) -> None:
    """The upsampler's offset heads (initialised at zero) get weights, so its sampling paths move."""
    for head in (net.upsampler.spatial_head, net.upsampler.temporal_head):
        head.weight.normal_(0, 0.5)
        head.bias.normal_(0, 0.5)
