"""Multiply-accumulate count of one SAVSR forward pass.

Method: run the network on the ``meta`` device (shapes only, no memory, under a second for the
default model) inside ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per
multiply-accumulate of every convolution and matrix product (element-wise work, pooling, the
5 x 5 per-pixel filter's 25 multiply-adds per value and bilinear sampling are not counted,
as in the usual profiler figures). MACs = FLOPs / 2.

Measured for the default configuration, 1 x 7 x 3 x 180 x 320 -> 720 x 1280 (x4):
1.221 T MACs per output frame (~2.44 T FLOPs), i.e. the published "1.22 TFLOPs" (a MAC
count); about three quarters of it in the two recurrent units.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import SAVSRConfig, resolve_config
from .savsr import SAVSR

__all__ = ["count_macs"]


def count_macs(
    config: "SAVSRConfig | str | None" = None,
    in_size: tuple[int, int] = (180, 320),
    scale: float | tuple[float, float] = 4.0,
    batch: int = 1,
) -> dict[str, Any]:
    """{"total": MACs, "by_module": {top-level submodule: MACs}} for one forward on ``meta``."""
    cfg = resolve_config(config)
    with torch.device("meta"):
        net = SAVSR(cfg).eval()
        frames = torch.empty(batch, cfg.num_frames, cfg.in_channels, *in_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(frames, scale=scale)
    counts = counter.get_flop_counts()
    by_module = {
        name: sum(counts.get(f"SAVSR.{name}", {}).values()) // 2
        for name, _ in net.named_children()
    }
    return {"total": counter.get_total_flops() // 2, "by_module": by_module}
