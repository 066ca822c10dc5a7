"""Where a scene cut is, from luma thumbnails of consecutive frames: one rule for the filter and for training.

There is a cut between frames ``i - 1`` and ``i`` when their mean absolute difference ``d(i)`` is both

* above :data:`CONTRAST_FRACTION` times the contrast (luma standard deviation) of the two frames, and
* above :data:`NEIGHBOUR_RATIO` times the median of the ``d`` of the :data:`RADIUS` pairs on each side,

so fast but continuous motion, which raises every ``d`` around it, is not taken for a cut. Pure numpy: the
VapourSynth layer (``vssavsr.plugin.scenes``) makes the thumbnails inside a filter graph, training
(``training.data.windows``) from decoded frames.
"""

from __future__ import annotations

import statistics
from typing import Sequence

import numpy as np

__all__ = ["THUMB_WIDTH", "RADIUS", "is_cut", "frame_stats", "cut_at", "cuts_from_thumbnails"]

#: Thumbnail width in pixels (height follows the aspect ratio).
THUMB_WIDTH = 64
#: Neighbouring frame pairs on each side that the difference is compared with.
RADIUS = 3
#: A cut's difference exceeds this fraction of the frames' contrast ...
CONTRAST_FRACTION = 0.3
#: ... and this many times the median difference of the neighbouring pairs.
NEIGHBOUR_RATIO = 3.0
#: Floor of the contrast (luma std, 0..1), so that near-black frames do not make every change a cut.
MIN_CONTRAST = 0.02


def is_cut(diffs: Sequence[float | None], contrast: float) -> bool:
    """Whether the centre pair of ``diffs`` (``2 * RADIUS + 1`` values, ``None`` where a pair lies outside
    the clip) is a cut; ``contrast`` is the smaller luma std of its two frames."""
    centre = diffs[RADIUS]
    if centre is None:
        return False
    neighbours = [d for k, d in enumerate(diffs) if k != RADIUS and d is not None]
    base = statistics.median(neighbours) if neighbours else 0.0
    return centre > CONTRAST_FRACTION * max(contrast, MIN_CONTRAST) and centre > NEIGHBOUR_RATIO * base


def frame_stats(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(d, c)`` of ``(N, h, w)`` luma thumbnails in 0..1: ``d[i]`` the mean absolute difference between
    frames ``i - 1`` and ``i`` (``d[0] = nan``), ``c[i]`` the std of frame ``i``."""
    t = np.asarray(thumbs, dtype=np.float32)
    d = np.full(len(t), np.nan, dtype=np.float32)
    if len(t) > 1:
        d[1:] = np.abs(t[1:] - t[:-1]).mean(axis=(1, 2))
    return d, t.std(axis=(1, 2))


def cut_at(i: int, d: np.ndarray, c: np.ndarray) -> bool:
    """Whether a scene starts at frame ``i`` (a cut between ``i - 1`` and ``i``), from :func:`frame_stats`."""
    n = len(d)
    if not 1 <= i < n:
        return False
    diffs = [float(d[j]) if 1 <= j < n else None for j in range(i - RADIUS, i + RADIUS + 1)]
    return is_cut(diffs, float(min(c[i - 1], c[i])))


def cuts_from_thumbnails(thumbs: np.ndarray) -> list[int]:
    """Frames that start a new scene in ``(N, h, w)`` luma thumbnails (0..1)."""
    d, c = frame_stats(thumbs)
    return [i for i in range(1, len(d)) if cut_at(i, d, c)]
