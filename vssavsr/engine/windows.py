"""Which input frames feed output frame n: the model's 7-frame temporal window.

The window of output frame ``n`` is ``n - r .. n + r`` (``r = 3`` for the model's 7 frames).
Where it leaves the current scene (the clip's ends, or a scene cut), it is completed by
reflection inside the scene: the index is mirrored at the scene's first/last frame without
repeating that frame (``numpy.pad(mode="reflect")``), e.g. at the start of a clip the window
of frame 0 is ``3 2 1 0 1 2 3``. Scenes shorter than the window are reflected back and forth
(period ``2 * (length - 1)``); a one-frame scene repeats its frame. Frames of another scene are
never used.

Scene cuts come from the VapourSynth props ``_SceneChangePrev`` (set on the first frame of a
scene: a cut between ``i - 1`` and ``i``) and ``_SceneChangeNext`` (set on the last frame of a
scene: a cut between ``i`` and ``i + 1``). This module is pure Python: callers pass the flags.

Every index of the window of ``n`` lies in ``n - r .. n + r``, so a filter can request those
frames, read their scene-change flags, and then compute the window.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

WINDOW = 7
RADIUS = WINDOW // 2


def reflect_index(i: int, start: int, end: int) -> int:
    """Mirror ``i`` into ``start..end`` (inclusive) without repeating the edge frames."""
    if end < start:
        raise ValueError(f"empty scene {start}..{end}")
    length = end - start + 1
    if length == 1:
        return start
    period = 2 * (length - 1)
    k = (i - start) % period
    return start + (k if k < length else period - k)


def scene_bounds(
    n: int, num_frames: int, cut_before: Callable[[int], bool], radius: int = RADIUS
) -> tuple[int, int]:
    """First and last frame of the scene containing ``n``, looking at most ``radius`` frames away.

    ``cut_before(i)`` says whether a scene starts at frame ``i`` (a cut between ``i - 1`` and ``i``);
    it is only asked for ``i`` in ``n - radius + 1 .. n + radius`` (within the clip).
    """
    if not 0 <= n < num_frames:
        raise IndexError(f"frame {n} outside a clip of {num_frames} frames")
    start = n
    while start > max(0, n - radius) and not cut_before(start):
        start -= 1
    end = n
    while end < min(num_frames - 1, n + radius) and not cut_before(end + 1):
        end += 1
    return start, end


def cut_before_from_flags(flags: Mapping[int, tuple[bool, bool]]) -> Callable[[int], bool]:
    """``cut_before`` from per-frame ``(scene_change_prev, scene_change_next)`` flags.

    A cut lies between ``i - 1`` and ``i`` when frame ``i`` has ``_SceneChangePrev`` or frame
    ``i - 1`` has ``_SceneChangeNext``. Frames missing from ``flags`` count as unflagged.
    """

    def cut_before(i: int) -> bool:
        prev_i = flags.get(i, (False, False))[0]
        next_before = flags.get(i - 1, (False, False))[1]
        return bool(prev_i or next_before)

    return cut_before


def window_indices(
    n: int,
    num_frames: int,
    cut_before: Callable[[int], bool] | None = None,
    window: int = WINDOW,
) -> list[int]:
    """Indices of the ``window`` input frames that feed output frame ``n`` (centre in the middle)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be odd and positive, got {window}")
    radius = window // 2
    if cut_before is None:
        if not 0 <= n < num_frames:
            raise IndexError(f"frame {n} outside a clip of {num_frames} frames")
        start, end = 0, num_frames - 1
    else:
        start, end = scene_bounds(n, num_frames, cut_before, radius)
    return [reflect_index(n + k, start, end) for k in range(-radius, radius + 1)]


def needed_frames(n: int, num_frames: int, window: int = WINDOW) -> list[int]:
    """The frames to fetch for output ``n``: the window span, clipped to the clip (covers every case)."""
    radius = window // 2
    return list(range(max(0, n - radius), min(num_frames - 1, n + radius) + 1))


def windows_from_flags(
    outputs: Sequence[int], num_frames: int, flags: Mapping[int, tuple[bool, bool]], window: int = WINDOW
) -> list[list[int]]:
    """Windows for several outputs from the scene-change flags of the fetched frames."""
    cut_before = cut_before_from_flags(flags)
    return [window_indices(m, num_frames, cut_before, window) for m in outputs]
