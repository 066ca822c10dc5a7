"""Runner: devices, precision, shared models, and the per-clip session (batching, bounded caches)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from vssavsr.engine import runner as eng
from vssavsr.engine import windows


class FakeModel:
    """Stands in for ModelRunner: output pixel = weighted sum of the window's frames (at LR size,
    nearest-upsampled), so the result shows exactly which frames were used and in which order."""

    def __init__(self):
        self.calls = []
        self.device = torch.device("cpu")

    def __call__(self, frames, out_size, scale, offset=(0.0, 0.0), tile=None, tile_pad=None, ensemble=1):
        self.calls.append(frames.shape[0])
        w = torch.tensor([1, 10, 100, 1000, 10000, 100000, 1000000], dtype=torch.float64)
        x = (frames.double() * w.view(1, -1, 1, 1, 1)).sum(1) / 1e7
        return torch.nn.functional.interpolate(x.float(), size=out_size, mode="nearest")


def _frame(i, h=4, w=6):
    return [np.full((h, w), i / 100.0, dtype=np.float32) for _ in range(3)]


def _run(session, order, cuts=()):
    out = {}
    n = session.num_frames
    for k in order:
        req = session.plan(k)
        assert k in req
        frames = {i: _frame(i) for i in req}
        flags = {i: (i in cuts, False) for i in req}
        out[k] = session.process(k, frames, flags).copy()
    return out


def _expected(n, num, cuts=()):
    cut = windows.cut_before_from_flags({i: (True, False) for i in cuts})
    win = windows.window_indices(n, num, cut)
    w = [1, 10, 100, 1000, 10000, 100000, 1000000]
    return sum(wi * (i / 100.0) for wi, i in zip(w, win)) / 1e7


def test_session_uses_the_right_windows_and_batches_in_order():
    model = FakeModel()
    s = eng.UpscaleSession(model, num_frames=20, lr_size=(4, 6), out_size=(8, 12), batch=4)
    out = _run(s, range(20), cuts=(7,))
    for n in range(20):
        assert np.allclose(out[n], _expected(n, 20, cuts=(7,)), atol=1e-6), n
    assert sum(model.calls) == 20
    assert len(model.calls) == 5 and max(model.calls) == 4  # 4 windows per model call


def test_out_of_order_gives_the_same_frames():
    cuts = (5, 11)
    ref = _run(eng.UpscaleSession(FakeModel(), 17, (4, 6), (8, 12), batch=3), range(17), cuts)
    order = list(range(17))
    random.Random(0).shuffle(order)
    got = _run(eng.UpscaleSession(FakeModel(), 17, (4, 6), (8, 12), batch=3), order, cuts)
    for n in range(17):
        assert np.array_equal(ref[n], got[n])
    back = _run(eng.UpscaleSession(FakeModel(), 17, (4, 6), (8, 12), batch=3), reversed(range(17)), cuts)
    for n in range(17):
        assert np.array_equal(ref[n], back[n])


def test_interleaved_plans_share_one_model_call():
    """Like VapourSynth: several frames planned before any is processed, processed in any order."""
    model = FakeModel()
    s = eng.UpscaleSession(model, 12, (4, 6), (8, 12), batch=4)
    reqs = {k: s.plan(k) for k in range(4)}
    assert reqs[1] == reqs[0] == reqs[3]  # members of one group ask for the group's frames
    for k in (2, 0, 3, 1):
        s.process(k, {i: _frame(i) for i in reqs[k]}, {})
    assert model.calls == [4]
    assert s.stats()["pins"] == 0


def test_caches_stay_bounded_over_a_long_clip():
    s = eng.UpscaleSession(FakeModel(), 500, (4, 6), (8, 12), batch=4)
    peak_in = peak_out = 0
    for k in range(500):
        req = s.plan(k)
        s.process(k, {i: _frame(i) for i in req}, {})
        st = s.stats()
        peak_in, peak_out = max(peak_in, st["cached_inputs"]), max(peak_out, st["cached_outputs"])
    assert peak_in <= s.in_cache_size and peak_out <= s.out_cache_size
    assert s.stats()["groups"] == 0 and s.stats()["pins"] == 0


def test_cached_output_needs_only_its_own_frame_and_cancel_unpins():
    s = eng.UpscaleSession(FakeModel(), 10, (4, 6), (8, 12), batch=2)
    req = s.plan(0)
    s.process(0, {i: _frame(i) for i in req}, {})
    assert s.plan(1) == [1]  # computed ahead with 0
    s.cancel(1)
    assert s.stats()["pins"] == 0


def test_missing_frames_are_an_error_not_a_hang():
    s = eng.UpscaleSession(FakeModel(), 10, (4, 6), (8, 12), batch=1)
    s.plan(5)
    with pytest.raises(RuntimeError, match="not fetched"):
        s.process(5, {5: _frame(5)}, {})


def test_resolve_device_and_precision():
    assert eng.resolve_device(-1).type == "cpu"
    with pytest.raises(eng.EngineError, match="device_index=-2"):
        eng.resolve_device(-2)
    if not torch.cuda.is_available():
        assert eng.resolve_device(None).type == "cpu"
        with pytest.raises(eng.EngineError, match="CUDA is not available"):
            eng.resolve_device(0)
        with pytest.raises(eng.EngineError, match="fp16"):
            eng.resolve_precision(torch.device("cpu"), True)
    else:  # pragma: no cover - GPU machines
        with pytest.raises(eng.EngineError, match="unknown CUDA device"):
            eng.resolve_device(torch.cuda.device_count())
    assert eng.resolve_precision(torch.device("cpu"), None) is False
    assert eng.resolve_precision(torch.device("cuda", 0), None) is True


def test_runner_is_shared_per_file_device_and_precision(tiny_checkpoint):
    a = eng.get_runner(tiny_checkpoint, torch.device("cpu"), False)
    b = eng.get_runner(str(tiny_checkpoint), torch.device("cpu"), False)
    assert a is b
    x = torch.rand(2, 7, 3, 12, 16)
    y = a(x, (24, 32), (2.0, 2.0))
    assert y.shape == (2, 3, 24, 32) and y.dtype == torch.float32


def test_batched_model_call_equals_single_calls(tiny_checkpoint):
    r = eng.get_runner(tiny_checkpoint, torch.device("cpu"), False)
    x = torch.rand(3, 7, 3, 12, 16, generator=torch.Generator().manual_seed(3))
    both = r(x, (30, 40), (2.5, 2.5))
    for k in range(3):
        one = r(x[k:k + 1], (30, 40), (2.5, 2.5))
        assert (both[k] - one[0]).abs().max().item() < 1e-5


def test_missing_checkpoint_and_shipped_names(tmp_path, monkeypatch):
    with pytest.raises(eng.EngineError, match="no such file"):
        eng.get_runner(tmp_path / "nope.safetensors", torch.device("cpu"), False)
    with pytest.raises(eng.EngineError, match="not a shipped model"):
        eng.shipped_checkpoint("edsr")
    monkeypatch.setattr(eng, "weights_dir", lambda: tmp_path)
    with pytest.raises(eng.EngineError, match="checkpoint=PATH"):
        eng.default_checkpoint(torch.device("cpu"))
    with pytest.raises(eng.EngineError, match="checkpoint=PATH"):
        eng.shipped_checkpoint("savsr-s")
    (tmp_path / "savsr-s.safetensors").write_bytes(b"x")
    assert eng.default_checkpoint(torch.device("cpu")).name == "savsr-s.safetensors"
    assert eng.default_checkpoint(torch.device("cuda", 0)).name == "savsr-s.safetensors"
    (tmp_path / "savsr.safetensors").write_bytes(b"x")
    assert eng.default_checkpoint(torch.device("cuda", 0)).name == "savsr.safetensors"
    assert eng.default_checkpoint(torch.device("cpu")).name == "savsr-s.safetensors"


def test_cpu_runner_uses_channels_last_weights_with_unchanged_results(tiny_checkpoint):
    from vssavsr.model import load_checkpoint

    r = eng.get_runner(tiny_checkpoint, torch.device("cpu"), False)
    convs = [m for m in r.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    ref, _ = load_checkpoint(str(tiny_checkpoint), map_location="cpu")
    ref.eval()
    x = torch.rand(1, 7, 3, 12, 16, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        want = ref(x, out_size=(27, 36), scale=(2.25, 2.25))
    got = r(x, (27, 36), (2.25, 2.25))
    assert (got - want).abs().max().item() < 1e-5
    tiled = r(x, (27, 36), (2.25, 2.25), tile=(12, 12), tile_pad=2)
    assert tiled.shape == want.shape and torch.isfinite(tiled).all()
