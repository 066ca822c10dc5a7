"""Geometric self-ensemble: the model run on flipped and transposed copies of its input window, each output mapped
back and the copies averaged. It trades ``size`` times the compute for quality (scripts/BENCHMARKS.md and
training/RUNS.md have the measured gains).

A flip mirrors the HR sampling grid too: output pixel ``i`` sits at LR coordinate ``(i + 0.5) / s + o``, so the
mirrored call needs the offset ``w - o - W / s`` (zero when ``W = w * s`` exactly), and every output pixel of the
copy then samples the mirror image of the same LR position as in the plain call.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["SIZES", "check_size", "ensemble_forward"]

#: Copies an ensemble may average: (flip rows, flip columns, transpose) taken in this order.
_TRANSFORMS = (
    (False, False, False),
    (False, True, False),
    (True, False, False),
    (True, True, False),
    (False, False, True),
    (False, True, True),
    (True, False, True),
    (True, True, True),
)
SIZES = (1, 2, 4, 8)

#: fn(frames (B, T, C, h, w), out_size, scale, offset, tile) -> (B, C, H, W)
TiledFn = Callable[..., torch.Tensor]


def check_size(size: int) -> int:
    if size not in SIZES:
        raise ValueError(f"{size!r} copies: use 1 (off), 2 (+ mirror), 4 (+ flips) or 8 (+ transposes)")
    return size


def _swap(pair):
    return None if pair is None else (pair[1], pair[0])


def ensemble_forward(fn: TiledFn, frames: torch.Tensor, out_size: tuple[int, int], scale: tuple[float, float],
                     offset: tuple[float, float], size: int = 1,
                     tile: int | tuple[int, int] | None = None) -> torch.Tensor:
    """The mean of ``fn`` over the first ``size`` flips/transposes of ``frames``, each output mapped back."""
    check_size(size)
    if size == 1:
        return fn(frames, out_size, scale, offset, tile)
    h, w = frames.shape[-2:]
    H, W = out_size
    total = None
    for flip_y, flip_x, transpose in _TRANSFORMS[:size]:
        oy = h - offset[0] - H / scale[0] if flip_y else offset[0]
        ox = w - offset[1] - W / scale[1] if flip_x else offset[1]
        dims = [d for d, on in ((-2, flip_y), (-1, flip_x)) if on]
        x = frames.flip(dims) if dims else frames
        size_t, scale_t, offset_t, tile_t = (H, W), tuple(scale), (oy, ox), tile
        if transpose:
            x = x.transpose(-1, -2)
            size_t, scale_t, offset_t = _swap(size_t), _swap(scale_t), _swap(offset_t)
            tile_t = _swap(tile) if isinstance(tile, (tuple, list)) else tile
        y = fn(x, size_t, scale_t, offset_t, tile_t)
        if transpose:
            y = y.transpose(-1, -2)
        if dims:
            y = y.flip(dims)
        total = y.float() if total is None else total.add_(y.float())
    return total.div_(size)
