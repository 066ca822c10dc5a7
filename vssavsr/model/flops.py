"""Cost of one SAVSR forward pass without running it: multiply-accumulates, and the bytes of live tensors.

Method: run the network on the ``meta`` device (shapes only, no memory, under a second for the
default model) inside ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per
multiply-accumulate of every convolution and matrix product (element-wise work, pooling, the
5 x 5 per-pixel filter's 25 multiply-adds per value and bilinear sampling are not counted,
as in the usual profiler figures). MACs = FLOPs / 2.

Measured for the default configuration, 1 x 7 x 3 x 180 x 320 -> 720 x 1280 (x4):
1.221 T MACs per output frame (~2.44 T FLOPs), i.e. the published "1.22 TFLOPs" (a MAC
count); about three quarters of it in the two recurrent units.

Memory: ``LiveTensorBytes`` records every tensor an op creates, holds its storage's bytes while any tensor
using that storage is alive, and tracks the peak and the largest storage: the activations of a pass (weights and
inputs, created before it, are not counted; allocator slack and convolution workspaces neither). On the ``meta``
device this is a prediction made in well under a second. The model tests and ``scripts/benchmark`` both use it.
"""

from __future__ import annotations

import weakref
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from .config import SAVSRConfig, resolve_config
from .savsr import SAVSR

__all__ = ["count_macs", "LiveTensorBytes"]


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


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of the storages that ops create, while any tensor using them is alive (``peak``), and the
    largest single one (``largest``)."""

    def __init__(self) -> None:
        super().__init__()
        self.current = self.peak = self.largest = 0
        self._users: Counter = Counter()  # storage -> live tensors using it (views included)
        self._bytes: dict[int, int] = {}

    def _release(self, key: int) -> None:
        self._users[key] -= 1
        if self._users[key] == 0:
            del self._users[key]
            self.current -= self._bytes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage._cdata
                if key not in self._bytes:
                    size = storage.nbytes()
                    self._bytes[key] = size
                    self.current += size
                    self.peak = max(self.peak, self.current)
                    self.largest = max(self.largest, size)
                self._users[key] += 1
                weakref.finalize(t, self._release, key)
        return out
