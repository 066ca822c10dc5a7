"""Overlapping low-resolution tiles and their exact assembly.

A frame too large for the device is cut into LR tiles that overlap by ``pad`` pixels on every
inner side. Each HR output pixel belongs to exactly one tile: the one whose *core* (the tile
without its overlap) contains the pixel's LR sampling position. A tile is asked only for its
own HR block, through the model's ``offset`` argument, so the blocks fit together without any
blending and every pixel is computed with at least ``pad`` LR pixels of real context on each
side. With ``pad`` at least the model's effective receptive field the result equals the
untiled one (tested to 1/255 on real content).

Coordinate mapping (the model's contract): output pixel ``i`` samples the LR frame at
``y = (i + 0.5) / sy - 0.5 + oy``. A tile cut at LR row ``y0`` producing global HR rows from
``I0`` uses ``oy' = I0 / sy + oy - y0``.

Tile borders fall on even LR coordinates, so that stride-2 parts of the network (the
scale-adaptive module pools 2 x 2) see the same grid as in the untiled frame.

Global pooling. SAVSR's scale-attention convolutions and channel attentions use the global
average of a feature map over the whole frame, which no tile can see. Every such average is a
``GlobalAvgPool`` module of the model (``vssavsr.model.layers``). Tiled inference runs the tiles
first in "statistics" passes (the features at full cost, only a 1 x 1 HR block per tile), in which
a ``pooling_hook`` records, for each pooling call in call order, the sum of its input over the
tile's core; the frame-wide means assembled from those sums replace the tile-local means in the
next pass. ``stat_passes`` passes (default 2) make the means converge to the untiled ones; the
final pass produces the output with them. One pass leaves the deeper means computed from
features that still saw tile-local means upstream: with trained weights that was up to 1.6/255
at ×2 on Vid4 calendar in 64-96 pixel tiles, a second pass brings it to 0.2/255 for about 1.5×
the tiled time. A network with no pooling call needs no statistics pass and gets none. Any call
that cannot be made frame-wide (a map that is not at the tile's resolution, a call sequence that
differs between passes or tiles) raises ``TiledPoolingError`` instead of leaving a seam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from vssavsr.model.layers import GlobalAvgPool, pooling_hook

#: Overlap (LR pixels) used when the caller gives none.
DEFAULT_PAD = 16
#: Tile borders are multiples of this (LR pixels).
ALIGN = 2
#: Smallest tile core (LR pixels) accepted.
MIN_CORE = 8
#: Statistics passes before the final tiled pass (see the module docstring).
DEFAULT_STAT_PASSES = 2
#: HR pixels each tile computes beyond its block and drops (layers at HR, e.g. the final 3 x 3
#: conv, would otherwise see zero padding at inner block edges).
HR_MARGIN = 4


@dataclass(frozen=True)
class AxisSegment:
    """One tile along one axis: LR range fed to the model, HR range it produces, its offset."""

    lr0: int
    lr1: int
    hr0: int
    hr1: int
    offset: float
    core0: int = 0  # the LR pixels this tile owns (no other tile's core overlaps them)
    core1: int = 0


@dataclass(frozen=True)
class Tile:
    y: AxisSegment
    x: AxisSegment

    @property
    def lr_box(self) -> tuple[int, int, int, int]:
        return self.y.lr0, self.y.lr1, self.x.lr0, self.x.lr1

    @property
    def hr_box(self) -> tuple[int, int, int, int]:
        return self.y.hr0, self.y.hr1, self.x.hr0, self.x.hr1


def _align_down(v: int) -> int:
    return v - v % ALIGN


def _align_up(v: int) -> int:
    return v + (-v) % ALIGN


def check_tile(tile: int, pad: int) -> None:
    """Raise ValueError (naming the argument) when ``tile``/``pad`` cannot work together."""
    if pad < 0:
        raise ValueError(f"tile_pad must be >= 0, got {pad}")
    pad = _align_up(pad)
    if tile < 2 * pad + MIN_CORE:
        raise ValueError(
            f"tile={tile} leaves no room next to the overlap of {pad} LR pixels on each side: "
            f"use tile >= {2 * pad + MIN_CORE} (or a smaller tile_pad)"
        )


def plan_axis(n_lr: int, n_hr: int, scale: float, offset: float, tile: int | None, pad: int) -> list[AxisSegment]:
    """Split one axis of ``n_lr`` LR pixels into tiles of at most ``tile`` pixels (overlap included)."""
    if n_lr <= 0 or n_hr <= 0:
        raise ValueError("empty axis")
    if not tile or tile >= n_lr:
        return [AxisSegment(0, n_lr, 0, n_hr, float(offset), 0, n_lr)]
    check_tile(tile, pad)
    pad = _align_up(pad)
    # Cores of at most (tile - 2 pad - ALIGN) pixels, so that aligning them keeps tiles <= tile.
    max_core = tile - 2 * pad - ALIGN
    count = max(2, math.ceil(n_lr / max_core))
    cuts = [0] + [_align_down(round(k * n_lr / count)) for k in range(1, count)] + [n_lr]
    cuts = sorted(set(cuts))
    # HR boundary of each cut: first output pixel whose LR position is at or after it.
    hr_cuts = [0]
    for c in cuts[1:-1]:
        b = math.ceil((c - offset) * scale - 0.5 - 1e-9)
        hr_cuts.append(min(max(b, hr_cuts[-1]), n_hr))
    hr_cuts.append(n_hr)
    segments = []
    for k in range(len(cuts) - 1):
        hr0, hr1 = hr_cuts[k], hr_cuts[k + 1]  # may be empty: the tile still counts for the means
        lr0 = max(0, cuts[k] - pad)
        lr1 = min(n_lr, cuts[k + 1] + pad)
        segments.append(AxisSegment(lr0, lr1, hr0, hr1, hr0 / scale + offset - lr0, cuts[k], cuts[k + 1]))
    return segments


def plan_tiles(
    lr_size: tuple[int, int],
    out_size: tuple[int, int],
    scale: tuple[float, float],
    offset: tuple[float, float] = (0.0, 0.0),
    tile: int | tuple[int, int] | None = None,
    pad: int = DEFAULT_PAD,
) -> list[Tile]:
    """Tiles covering the HR output of one frame. ``tile`` is ``(tile_h, tile_w)``, an int, or None."""
    if tile is None or tile == 0:
        tile_h = tile_w = None
    elif isinstance(tile, int):
        tile_h = tile_w = tile
    else:
        tile_h, tile_w = tile
    ys = plan_axis(lr_size[0], out_size[0], scale[0], offset[0], tile_h, pad)
    xs = plan_axis(lr_size[1], out_size[1], scale[1], offset[1], tile_w, pad)
    return [Tile(y, x) for y in ys for x in xs]


def overlap_cost(tiles: Sequence[Tile], lr_size: tuple[int, int]) -> float:
    """LR pixels the ``tiles`` process / LR pixels of the frame: the compute that the overlaps add to each
    model pass (1.0 untiled)."""
    area = sum((t.y.lr1 - t.y.lr0) * (t.x.lr1 - t.x.lr0) for t in tiles)
    return area / (lr_size[0] * lr_size[1])


def efficient_tile(
    lr_size: tuple[int, int],
    out_size: tuple[int, int],
    scale: tuple[float, float],
    tile: tuple[int, int],
    pad: int = DEFAULT_PAD,
    target: float = 1.5,
) -> tuple[int, int]:
    """The smallest (tile_h, tile_w), growing both in steps of 16 from ``tile``, whose overlaps cost
    at most ``target`` times the frame's pixels (an untiled frame when nothing smaller does)."""
    tile_h, tile_w = tile
    while tile_h < lr_size[0] or tile_w < lr_size[1]:
        if overlap_cost(plan_tiles(lr_size, out_size, scale, tile=(tile_h, tile_w), pad=pad), lr_size) <= target:
            break
        tile_h, tile_w = min(tile_h + 16, lr_size[0]), min(tile_w + 16, lr_size[1])
    return tile_h, tile_w


ModelFn = Callable[[torch.Tensor, tuple[int, int], tuple[float, float], tuple[float, float]], torch.Tensor]



class TiledPoolingError(RuntimeError):
    """A frame-wide average of the network cannot be made frame-wide in tiles (see the module docs)."""


class _TilePooling:
    """The pooling hook of one tile's run: record each ``GlobalAvgPool`` call's sum over the tile's core, and/or
    return the frame-wide means of an earlier pass instead of the tile's own, call by call."""

    def __init__(self, core: tuple, lr_size: tuple[int, int], means: list[torch.Tensor] | None,
                 sites: list[GlobalAvgPool] | None, record: bool = True):
        self.core = core  # (r0, r1, c0, c1) in tile coordinates; r1/c1 None: to the (padded) end
        self.lr_size = lr_size  # the tile's LR size
        self.means = means  # frame-wide means of the previous pass, by call index
        self.expected = sites  # the modules of those calls, in order (None: the first tile of the first pass)
        self.record = record
        self.sites: list[GlobalAvgPool] = []
        self.sums: list[torch.Tensor] = []
        self.counts: list[int] = []

    def __call__(self, module: GlobalAvgPool, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        k = len(self.sites)
        self.sites.append(module)
        if self.expected is not None and (k >= len(self.expected) or self.expected[k] is not module):
            raise TiledPoolingError(
                f"global pooling call {k} ({module}) is not the one the statistics pass saw there: the network's "
                "pooling calls differ between tiles or passes, so their means cannot be made frame-wide")
        h, w = x.shape[-2:]
        th, tw = self.lr_size
        if not (th <= h <= th + 1 and tw <= w <= tw + 1):  # at the tile's LR size, or padded to even
            raise TiledPoolingError(
                f"global pooling call {k} ({module}) averages a {h} x {w} map in a {th} x {tw} tile: only maps at "
                "the tile's LR resolution can be made frame-wide; run this network untiled")
        if self.record:
            r0, r1, c0, c1 = self.core
            r1 = h if r1 is None else r1
            c1 = w if c1 is None else c1
            self.sums.append(x[..., r0:r1, c0:c1].float().sum(dim=(2, 3)))
            self.counts.append((r1 - r0) * (c1 - c0))
        if self.means is None:
            return mean
        return self.means[k].to(mean.dtype).reshape(mean.shape)

    def check_complete(self) -> None:
        """Every call of the statistics pass happened in this run too (a missed site would keep a tile-local mean)."""
        if self.expected is not None and len(self.sites) != len(self.expected):
            raise TiledPoolingError(
                f"the network made {len(self.sites)} global pooling calls on this tile, the statistics pass "
                f"{len(self.expected)}: their means cannot be made frame-wide")


def _run_tile(fn: ModelFn, args: tuple, pooling: _TilePooling) -> torch.Tensor:
    with pooling_hook(pooling):
        out = fn(*args)
    pooling.check_complete()
    return out


def _core_in_tile(t: Tile, lr_size: tuple[int, int]) -> tuple:
    """The tile's core in tile coordinates; an end at the frame's edge is open (None) so that
    the network's even-size padding row/column counts as in the untiled frame."""
    y0, _, x0, _ = t.lr_box
    return (
        t.y.core0 - y0,
        None if t.y.core1 == lr_size[0] else t.y.core1 - y0,
        t.x.core0 - x0,
        None if t.x.core1 == lr_size[1] else t.x.core1 - x0,
    )


def tiled_forward(
    fn: ModelFn,
    frames: torch.Tensor,
    out_size: tuple[int, int],
    scale: tuple[float, float],
    offset: tuple[float, float] = (0.0, 0.0),
    tile: int | tuple[int, int] | None = None,
    pad: int = DEFAULT_PAD,
    tiles: Sequence[Tile] | None = None,
    stat_passes: int = DEFAULT_STAT_PASSES,
) -> torch.Tensor:
    """Run ``fn(frames, out_size, scale, offset)`` tile by tile and assemble the HR output.

    ``frames``: (B, T, C, h, w). Returns (B, C_out, H, W) like ``fn``. With more than one
    tile, ``stat_passes`` statistics passes first make the network's global means frame-wide.
    """
    h, w = frames.shape[-2:]
    if tiles is None:
        tiles = plan_tiles((h, w), out_size, scale, offset, tile, pad)
    if len(tiles) == 1 and tiles[0].lr_box == (0, h, 0, w):
        return fn(frames, out_size, scale, offset)
    cores = [_core_in_tile(t, (h, w)) for t in tiles]

    means, sites = None, None
    for _ in range(max(0, stat_passes)):
        sums, counts = None, None
        for t, core in zip(tiles, cores):
            y0, y1, x0, x1 = t.lr_box
            pooling = _TilePooling(core, (y1 - y0, x1 - x0), means, sites)
            _run_tile(fn, (frames[..., y0:y1, x0:x1], (1, 1), scale, (t.y.offset, t.x.offset)), pooling)
            if sites is None:
                sites = pooling.sites
            if sums is None:
                sums, counts = pooling.sums, pooling.counts
            else:
                sums = [a + b for a, b in zip(sums, pooling.sums)]
                counts = [a + b for a, b in zip(counts, pooling.counts)]
        if not sites:  # nothing frame-wide in this network: the tiles are independent
            means = None
            break
        means = [s / c for s, c in zip(sums, counts)]

    out = None
    for t, core in zip(tiles, cores):
        y0, y1, x0, x1 = t.lr_box
        i0, i1, j0, j1 = t.hr_box
        if i1 <= i0 or j1 <= j0:
            continue
        # Extend the block by HR_MARGIN on each side (within the frame), then crop it back.
        e0, e1 = max(0, i0 - HR_MARGIN), min(out_size[0], i1 + HR_MARGIN)
        f0, f1 = max(0, j0 - HR_MARGIN), min(out_size[1], j1 + HR_MARGIN)
        off = (t.y.offset + (e0 - i0) / scale[0], t.x.offset + (f0 - j0) / scale[1])
        args = (frames[..., y0:y1, x0:x1], (e1 - e0, f1 - f0), scale, off)
        if means is not None:
            part = _run_tile(fn, args, _TilePooling(core, (y1 - y0, x1 - x0), means, sites, record=False))
        else:
            part = fn(*args)
        if out is None:
            out = part.new_empty(part.shape[:-2] + tuple(out_size))
        out[..., i0:i1, j0:j1] = part[..., i0 - e0:i1 - e0, j0 - f0:j1 - f0]
    return out
