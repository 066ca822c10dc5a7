"""The model filter inside VapourSynth: scene-change windows, request order, batching, bounded
memory, errors inside a frame, parallel requests from several clips, and clean release."""

from __future__ import annotations

import gc
import random
import threading

import numpy as np
import pytest
import torch
import vapoursynth as vs

from vssavsr.engine import runner as eng
from vssavsr.engine import windows
from vssavsr.plugin import frames as plugin_frames
from vssavsr.plugin import native

from vssavsr.plugin.arrays import clip_from_arrays

core = vs.core


@pytest.fixture(scope="module", autouse=True)
def _namespace():
    native.ensure_namespace(core)


class WindowProbe:
    """Fake runner: writes the value of each window frame (frame i is filled with i / 100) into the
    first 7 pixels of row 0, so the output shows which frames fed it. Optionally fails."""

    num_frames = 7
    device = torch.device("cpu")
    net = None

    def __init__(self, fail_at=None):
        self.batches = []
        self.fail_at = fail_at

    def __call__(self, frames, out_size, scale, offset=(0.0, 0.0), tile=None, tile_pad=None, ensemble=1):
        self.batches.append(frames.shape[0])
        if self.fail_at is not None and len(self.batches) >= self.fail_at:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        out = torch.zeros(frames.shape[0], 3, *out_size)
        out[:, :, 0, :7] = frames[:, :, :, 0, 0].transpose(1, 2)
        return out


@pytest.fixture
def probe(monkeypatch):
    p = WindowProbe()
    monkeypatch.setattr(eng, "get_runner", lambda *a, **k: p)
    return p


def numbered_clip(n, cuts_prev=(), cuts_next=(), w=16, h=12):
    parts = []
    for i in range(n):
        c = core.std.BlankClip(format=vs.RGBS, width=w, height=h, length=1, color=[i / 100] * 3)
        props = {}
        if i in cuts_prev:
            props["_SceneChangePrev"] = 1
        if i in cuts_next:
            props["_SceneChangeNext"] = 1
        parts.append(core.std.SetFrameProps(c, **props) if props else c)
    return core.std.Splice(parts)


def window_of(frame):
    return [int(round(v * 100)) for v in np.asarray(frame[0])[0, :7]]


def test_scene_changes_and_clip_ends_through_the_filter(probe):
    clip = numbered_clip(20, cuts_prev=(6,), cuts_next=(13,))
    out = core.savsr.Upscale(clip, 2, checkpoint="unused")
    cut = windows.cut_before_from_flags({6: (True, False), 13: (False, True)})
    for n in range(20):
        assert window_of(out.get_frame(n)) == windows.window_indices(n, 20, cut), n
    # e.g. the first frame after the cut never sees the previous scene
    assert window_of(out.get_frame(6)) == [9, 8, 7, 6, 7, 8, 9]
    assert window_of(out.get_frame(13)) == [10, 11, 12, 13, 12, 11, 10]


def test_in_order_requests_are_batched(probe):
    clip = numbered_clip(16)
    out = core.savsr.Upscale(clip, 2, checkpoint="unused", batch=4)
    for n in range(16):
        out.get_frame(n)
    assert sum(probe.batches) == 16 and max(probe.batches) == 4 and len(probe.batches) == 4


def test_memory_stays_flat_over_a_long_clip(probe):
    clip = core.std.BlankClip(format=vs.RGB24, width=16, height=12, length=400)
    out = core.savsr.Upscale(clip, 2, checkpoint="unused", batch=3)
    session = plugin_frames.get(max(plugin_frames._sessions))
    peak = {"cached_inputs": 0, "cached_outputs": 0}
    for n in range(400):
        out.get_frame(n)
        st = session.stats()
        for k in peak:
            peak[k] = max(peak[k], st[k])
    assert peak["cached_inputs"] <= session.in_cache_size
    assert peak["cached_outputs"] <= session.out_cache_size
    assert session.stats()["pins"] == 0 and session.stats()["groups"] == 0


def test_error_inside_a_frame_names_the_frame_and_suggests_tile(monkeypatch):
    p = WindowProbe(fail_at=1)
    monkeypatch.setattr(eng, "get_runner", lambda *a, **k: p)
    out = core.savsr.Upscale(numbered_clip(8), 2, checkpoint="unused")
    with pytest.raises(vs.Error) as info:
        out.get_frame(3)
    msg = str(info.value)
    assert "frame 3" in msg and "out of memory" in msg and "tile=" in msg
    with pytest.raises(vs.Error, match="frame 5"):
        out.get_frame(5)


def test_out_of_memory_hint_of_a_graph_backend_sends_tiles_to_backend_torch():
    """backend="ort"/"ov"/"trt" refuses tile=, so its hint must not suggest tile= alone."""
    from types import SimpleNamespace

    from vssavsr.engine.backends import GraphRunner, GraphSpec, Target
    from vssavsr.plugin import _bridge

    class Graph(GraphRunner):
        backend = "ort"

    target = Target("ort", torch.device("cpu"), False, -1, False)
    handle = plugin_frames.register(SimpleNamespace(runner=Graph(GraphSpec((8, 8), (16, 16), (2.0, 2.0)), "g.onnx", target)))
    try:
        msg = _bridge._frame_error(3, RuntimeError("CUDA out of memory"), handle)
    finally:
        plugin_frames.release(handle)
    assert "frame 3" in msg and "backend='torch' with tile=N" in msg and "cannot tile" in msg


def real_clip(real_frames, n=8, h=48, w=64, fmt=vs.YUV420P8):
    rgb = core.std.SetFrameProps(clip_from_arrays(real_frames(n, (h, w))), _Matrix=0)
    if fmt == vs.RGBS:
        return rgb
    return core.resize.Bicubic(rgb, format=fmt, matrix=1)


def grab(out, order):
    res = {}
    for n in order:
        f = out.get_frame(n)
        res[n] = [np.array(f[p], copy=True) for p in range(f.format.num_planes)]
    return res


@pytest.mark.parametrize("fmt", [vs.RGBS, vs.YUV420P8])
def test_random_order_gives_the_same_frames(tiny_checkpoint, real_frames, fmt):
    clip = real_clip(real_frames, fmt=fmt)
    clip = core.std.SetFrameProps(clip[:5], _SceneChangeNext=0) + core.std.SetFrameProps(clip[5:], _SceneChangePrev=1)[:1] + clip[6:]
    n = clip.num_frames
    kw = dict(checkpoint=str(tiny_checkpoint), batch=3)
    ref = grab(core.savsr.Upscale(clip, 1.5, **kw), range(n))
    order = list(range(n))
    random.Random(1).shuffle(order)
    for got in (grab(core.savsr.Upscale(clip, 1.5, **kw), order), grab(core.savsr.Upscale(clip, 1.5, **kw), reversed(range(n)))):
        for k in range(n):
            for a, b in zip(ref[k], got[k]):
                if fmt == vs.RGBS:
                    assert np.abs(a - b).max() < 1e-5
                else:
                    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1 and (a != b).mean() < 1e-3


def test_parallel_requests_from_several_clips_do_not_deadlock(tiny_checkpoint, real_frames):
    clip = real_clip(real_frames, n=6)
    outs = [core.savsr.Upscale(clip, s, checkpoint=str(tiny_checkpoint), batch=2) for s in (1.5, 2.0)]
    ref = [grab(o, range(6)) for o in outs]
    fresh = [core.savsr.Upscale(clip, s, checkpoint=str(tiny_checkpoint), batch=2) for s in (1.5, 2.0)]
    results, errors = {}, []

    def run():
        try:
            futs = [(k, n, fresh[k].get_frame_async(n)) for n in random.Random(2).sample(range(6), 6) for k in (0, 1)]
            for k, n, fut in futs:
                f = fut.result()
                results[(k, n)] = np.array(f[0], copy=True)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "parallel requests did not finish (deadlock?)"
    assert not errors, errors
    for (k, n), plane in results.items():
        assert np.abs(plane.astype(int) - ref[k][n][0].astype(int)).max() <= 1


def test_filters_release_their_sessions(tiny_checkpoint):
    gc.collect()
    before = plugin_frames.live_sessions()
    out = core.savsr.Upscale(core.std.BlankClip(format=vs.RGB24, width=16, height=12, length=3), 2,
                             checkpoint=str(tiny_checkpoint))
    out.get_frame(0)
    assert plugin_frames.live_sessions() == before + 1
    del out
    gc.collect()
    assert plugin_frames.live_sessions() == before


def test_tile_argument_gives_the_untiled_frames(tiny_checkpoint, real_frames):
    clip = real_clip(real_frames, n=3, fmt=vs.RGBS)  # 64 x 48
    kw = dict(checkpoint=str(tiny_checkpoint))
    ref = grab(core.savsr.Upscale(clip, 2, **kw), [1])[1]
    tiled = grab(core.savsr.Upscale(clip, 2, tile=40, tile_pad=8, **kw), [1])[1]  # 3 x 3 tiles
    wide = grab(core.savsr.Upscale(clip, 2, tile=[64, 32], tile_pad=8, **kw), [1])[1]  # 1 x 4 tiles
    for got in (tiled, wide):
        for a, b in zip(ref, got):
            assert np.abs(a - b).max() <= 1 / 255
