"""NumPy arrays in and out of VapourSynth: the one place that builds a clip from arrays or reads a frame's planes.

For Python encoding workflows, the evaluation and the benchmarks, which all need pictures that no source filter
reads (model outputs, synthetic frames, decoded PNGs) as clips, and frames back as arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import vapoursynth as vs


def clip_from_arrays(frames: Sequence | np.ndarray, format: int = vs.RGBS, fpsnum: int = 24,
                     fpsden: int = 1) -> vs.VideoNode:
    """A clip whose frame ``n`` holds ``frames[n]``, a (planes, height, width) array.

    ``format`` must have planes of one size (RGB, GRAY or 4:4:4 YUV). Values are copied as they are (floats in
    [0, 1] for float formats, integers for integer ones); a float array into an integer format raises ``TypeError``
    instead of truncating. ``frames`` is read lazily, one frame per request, so it may be a sequence that
    computes its items.
    """
    if len(frames) == 0:
        raise ValueError("clip_from_arrays: frames is empty; give at least one (planes, height, width) array")
    first = np.asarray(frames[0])
    fmt = vs.core.get_video_format(format)
    if first.ndim != 3 or first.shape[0] != fmt.num_planes:
        raise ValueError(f"clip_from_arrays: frames[0] has shape {first.shape}; {fmt.name} needs "
                         f"({fmt.num_planes}, height, width)")
    if fmt.subsampling_w or fmt.subsampling_h:
        raise ValueError(f"clip_from_arrays: format {fmt.name} is subsampled; use a 4:4:4, RGB or GRAY format "
                         "and convert with core.resize afterwards")
    _, height, width = first.shape
    blank = vs.core.std.BlankClip(format=fmt.id, width=width, height=height, length=len(frames),
                                  fpsnum=fpsnum, fpsden=fpsden)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        picture = np.asarray(frames[n])
        if picture.shape != first.shape:
            raise ValueError(f"clip_from_arrays: frames[{n}] has shape {picture.shape}, frames[0] {first.shape}")
        out = f.copy()
        for p in range(fmt.num_planes):
            np.copyto(np.asarray(out[p]), picture[p], casting="same_kind")
        return out

    return vs.core.std.ModifyFrame(blank, blank, fill)


def frame_array(frame: vs.VideoFrame) -> np.ndarray:
    """A copy of the frame's planes as one (planes, height, width) array in the frame's sample type."""
    fmt = frame.format
    if fmt.subsampling_w or fmt.subsampling_h:
        raise ValueError(f"frame_array: format {fmt.name} is subsampled; convert to 4:4:4, RGB or GRAY first")
    return np.stack([np.asarray(frame[p]) for p in range(fmt.num_planes)])


def clip_arrays(clip: vs.VideoNode) -> np.ndarray:
    """Every frame of the clip as one (frames, planes, height, width) array."""
    return np.stack([frame_array(f) for f in clip.frames(close=True)])
