"""Frame callbacks of the model filter (savsr.InternalFilter), called from the native shim.

The shim calls these with the GIL held, from VapourSynth's worker threads:

* ``plan(handle, n)``: the input frames to request for output ``n`` (int32 array as bytes).
* ``process(handle, n, idx, flags, src, src_stride, dst, dst_stride, src_height)``: the
  requested RGBS frames' planes as read-only memoryviews (3 per frame, in ``idx`` order), their
  scene-change flags (2 bytes per frame) and the output frame's 3 planes as writable
  memoryviews. The planes are copied in; nothing keeps a view after the call returns.
* ``cancel(handle, n)``: the request for ``n`` failed before ``process``.
* ``release(handle)``: the filter was freed.

The per-clip logic (batching, caches) is :class:`vssavsr.engine.runner.UpscaleSession`.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

_sessions: dict[int, object] = {}
_counter = itertools.count(1)
_lock = threading.Lock()


def register(session) -> int:
    with _lock:
        handle = next(_counter)
        _sessions[handle] = session
        return handle


def release(handle: int) -> None:
    with _lock:
        _sessions.pop(handle, None)


def get(handle: int):
    with _lock:
        session = _sessions.get(handle)
    if session is None:
        raise RuntimeError(f"internal error: unknown filter handle {handle}")
    return session


def live_sessions() -> int:
    with _lock:
        return len(_sessions)


def plan(handle: int, n: int) -> bytes:
    return np.asarray(get(handle).plan(n), dtype=np.int32).tobytes()


def cancel(handle: int, n: int) -> None:
    session = _sessions.get(handle)
    if session is not None:
        session.cancel(n)


def _plane(mv, height: int, stride: int, width: int) -> np.ndarray:
    return np.frombuffer(mv, dtype=np.float32).reshape(height, stride // 4)[:, :width]


def process(handle, n, idx_bytes, flag_bytes, src, src_stride, dst, dst_stride, src_height) -> None:
    session = get(handle)
    idx = np.frombuffer(idx_bytes, dtype=np.int32).tolist()
    fl = np.frombuffer(flag_bytes, dtype=np.uint8).reshape(-1, 2)
    h, w = session.lr_size
    if src_height != h:
        raise RuntimeError(f"internal error: input frames are {src_height} rows high, expected {h}")
    frames = {}
    flags = {}
    for k, i in enumerate(idx):
        frames[i] = [_plane(src[3 * k + p], h, src_stride, w) for p in range(3)]
        flags[i] = (bool(fl[k, 0]), bool(fl[k, 1]))
    out = session.process(n, frames, flags)
    H, W = session.out_size
    for p in range(3):
        _plane(dst[p], H, dst_stride, W)[...] = out[p]
