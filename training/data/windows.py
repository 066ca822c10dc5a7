"""Which frames make a 7-frame training sample: windows that never span a scene cut; scene-cut detection."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vssavsr.engine.scenes import THUMB_WIDTH, cuts_from_thumbnails


def valid_windows(
    n_frames: int, cuts: Iterable[int] = (), length: int = 7, strides: Sequence[int] = (1,)
) -> list[tuple[int, ...]]:
    """All windows of ``length`` frames (frame indices s, s+k, ..., s+(length-1)k for each stride k)
    that lie inside one shot. ``cuts`` are the indices of the first frame of each new shot."""
    shot = np.zeros(n_frames, dtype=np.int64)
    for c in sorted(set(int(c) for c in cuts)):
        if 0 < c < n_frames:
            shot[c:] += 1
    out: list[tuple[int, ...]] = []
    for k in strides:
        k = int(k)
        if k < 1:
            raise ValueError(f"stride must be >= 1, got {k}")
        span = (length - 1) * k
        for s in range(0, n_frames - span):
            if shot[s] == shot[s + span]:  # shots are contiguous: same shot at both ends = same shot throughout
                out.append(tuple(range(s, s + span + 1, k)))
    return out


def detect_scene_cuts(frames: torch.Tensor) -> list[int]:
    """Scene cuts in ``(N, 3, H, W)`` uint8 frames: indices n where frame n starts a new shot, by the filter's own
    rule (``vssavsr.engine.scenes``) on luma thumbnails :data:`THUMB_WIDTH` pixels wide."""
    if frames.shape[0] < 2:
        return []
    h, w = frames.shape[-2:]
    tw = min(THUMB_WIDTH, w)
    th = max(1, round(h * tw / w))
    step = max(1, w // (4 * tw))  # subsample before averaging: cheap on long HD clips
    small = frames[..., ::step, ::step]
    ys = []
    for chunk in torch.split(small, 64):
        rgb = chunk.float() / 255.0
        y = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
        ys.append(F.interpolate(y[:, None], size=(th, tw), mode="area")[:, 0])
    return cuts_from_thumbnails(torch.cat(ys).numpy())
