"""Build VapourSynth clips from arrays in tests."""

from __future__ import annotations

import numpy as np
import vapoursynth as vs

core = vs.core


def clip_from_arrays(arrays) -> vs.VideoNode:
    """An RGBS clip whose frame n holds ``arrays[n]``: (3, h, w) floats in [0, 1]."""
    h, w = arrays[0].shape[-2:]
    base = core.std.BlankClip(format=vs.RGBS, width=w, height=h, length=len(arrays))

    def put(n, f):
        fout = f.copy()
        for p in range(3):
            np.copyto(np.asarray(fout[p]), np.asarray(arrays[n][p], dtype=np.float32))
        return fout

    return core.std.ModifyFrame(base, base, put)
