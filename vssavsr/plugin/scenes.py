"""Scene cuts for the model's windows: the source's ``_SceneChangePrev``/``_SceneChangeNext``, or detected.

A window never mixes frames of two scenes (``vssavsr.engine.windows``); it learns where scenes change
from these two frame props. Sources rarely set them, so :func:`mark_scene_cuts` adds them:

* ``scene_detect=None`` (default): a frame that carries either prop keeps its own; a frame with neither
  gets the detector's flags;
* ``True``: every frame gets the detector's flags (the source's are replaced);
* ``False``: no detection; the source's props, if any, are used as they are.

The detector compares small luma thumbnails (:data:`THUMB_WIDTH` pixels wide) of neighbouring frames with
the rule in ``vssavsr.engine.scenes`` (shared with training). Why this detector and not a PyPI plugin, with
the measurements: README, section "Scene cuts". :func:`mark_scene_cuts` applies it per frame inside
VapourSynth, so any frame can be requested first (chunked encodes).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

import numpy as np
import vapoursynth as vs

from vssavsr.engine.scenes import RADIUS, THUMB_WIDTH, cut_at, frame_stats

PREV = "_SceneChangePrev"
NEXT = "_SceneChangeNext"


# ------------------------------------------------------------------------------------------------
# inside VapourSynth
# ------------------------------------------------------------------------------------------------


def thumbnails(clip: vs.VideoNode) -> vs.VideoNode:
    """The clip's luma as GRAYS, :data:`THUMB_WIDTH` pixels wide (antialiased by resize's downscaling)."""
    width = min(THUMB_WIDTH, clip.width)
    height = max(1, round(clip.height * width / clip.width))
    kw = {"matrix_s": "709"} if clip.format.color_family == vs.RGB else {}
    return vs.core.resize.Bilinear(clip, width, height, format=vs.GRAYS, **kw)


def _shifted(clip: vs.VideoNode, k: int) -> vs.VideoNode:
    """Frame ``n`` of the result is frame ``n + k`` of ``clip``, clamped to the clip's ends."""
    n = clip.num_frames
    if k == 0:
        return clip
    if abs(k) >= n:
        return (clip[0] if k < 0 else clip[-1]) * n
    if k < 0:
        return clip[0] * (-k) + clip[: n + k]
    return clip[k:] + clip[-1] * k


class _Flagger:
    """ModifyFrame selector: frame ``n`` of the clip with the detected flags, from thumbnails ``n - R - 1 ..
    n + R + 1`` (``R = RADIUS``)."""

    def __init__(self, num_frames: int, keep_source_flags: bool):
        self.num_frames = num_frames
        self.keep = keep_source_flags

    def __call__(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        src = f[0]
        if self.keep and (PREV in src.props or NEXT in src.props):
            return src
        span = RADIUS + 1
        thumbs = {}
        for k, frame in enumerate(f[1:], start=-span):
            j = n + k
            if 0 <= j < self.num_frames:
                thumbs[j] = np.asarray(frame[0])
        first = min(thumbs)
        stack = np.stack([thumbs[j] for j in sorted(thumbs)])
        d, c = frame_stats(stack)
        out = src.copy()
        out.props[PREV] = int(cut_at(n - first, d, c))
        out.props[NEXT] = int(cut_at(n + 1 - first, d, c))
        return out


def detect(clip: vs.VideoNode, keep_source_flags: bool = False) -> vs.VideoNode:
    """``clip`` with ``_SceneChangePrev``/``_SceneChangeNext`` (0/1) on every frame from the detector;
    with ``keep_source_flags``, frames that carry either prop keep theirs."""
    thumbs = thumbnails(clip)
    span = RADIUS + 1
    shifted = [_shifted(thumbs, k) for k in range(-span, span + 1)]
    return vs.core.std.ModifyFrame(clip, [clip, *shifted], _Flagger(clip.num_frames, keep_source_flags))


def mark_scene_cuts(clip: vs.VideoNode, scene_detect: bool | None = None) -> vs.VideoNode:
    """``clip`` with scene-change props for the model's windows (see the module docstring)."""
    if scene_detect is False:
        return clip
    return detect(clip, keep_source_flags=scene_detect is None)


def cut_list(clip: vs.VideoNode, on_frame: Callable[[int], None] | None = None) -> list[int]:
    """Frames of ``clip`` that start a new scene, read from the props (renders every frame, in order;
    ``on_frame(n)`` after each)."""
    cuts = []
    prev_next = False
    for n, f in enumerate(clip.frames(close=True)):
        props = f.props
        if n > 0 and (props.get(PREV) or prev_next):
            cuts.append(n)
        prev_next = bool(props.get(NEXT))
        if on_frame is not None:
            on_frame(n)
    return cuts


# ------------------------------------------------------------------------------------------------
# scene props without the model (chunk planning)
# ------------------------------------------------------------------------------------------------

_props_only = threading.local()


@contextlib.contextmanager
def props_only() -> Iterator[None]:
    """Within this block, ``Upscale`` returns a blank clip of its output's size and format that carries the
    frames' props (scene flags included) instead of running the model: the chunked encoder evaluates a
    script this way to find the output's scene cuts at the cost of decoding and detection alone."""
    old = getattr(_props_only, "on", False)
    _props_only.on = True
    try:
        yield
    finally:
        _props_only.on = old


def props_only_active() -> bool:
    return bool(getattr(_props_only, "on", False))
