"""ONNX export and the graph backends (backend="ort"/"ov"/"trt"): agreement with PyTorch, the cache, errors.

Exports take 10-25 s each on 2 loaded cores, so the tests share one cache folder and reuse the
geometries: the tiny network at 40x32 -> x2 and -> x1.5/x2.5 (width/height).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

import vssavsr
from vssavsr.engine import runner as eng
from vssavsr.plugin import native
from vssavsr.plugin.arrays import clip_arrays

pytest.importorskip("onnxruntime", reason="the ORT backend tests need onnxruntime (pip install -e '.[onnx]')")
pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (pip install -e '.[onnx]')")

from vssavsr.engine import backends  # noqa: E402
from vssavsr.engine.backends.export import GraphSpec, cached_graph_path  # noqa: E402

core = vs.core
CROP = dict(left=120, top=48, width=40, height=32)  # a textured corner of the sample, 40x32
FIRST, LENGTH, CUT = 26, 8, 4  # frames 26..33; frame 30 (index 4) starts a scene in our copy


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """One cache folder for the module (VSSAVSR_CACHE_DIR), so exports are shared between tests."""
    native.ensure_namespace(core)
    folder = tmp_path_factory.mktemp("vssavsr-cache")
    old = os.environ.get("VSSAVSR_CACHE_DIR")
    os.environ["VSSAVSR_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("VSSAVSR_CACHE_DIR", None)
    else:
        os.environ["VSSAVSR_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def real_clip():
    """8 real RGBS frames (a 40x32 crop of the bundled sample) with a scene cut before the 5th."""
    if not hasattr(core, "bs"):
        pytest.skip("vapoursynth-bestsource is needed to decode the bundled sample clip")
    clip = core.bs.VideoSource(vssavsr.sample_clip_path(), cachemode=0)[FIRST:FIRST + LENGTH]
    clip = core.std.CropAbs(clip, **CROP)
    clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="709")
    return clip[:CUT] + core.std.SetFrameProps(clip[CUT], _SceneChangePrev=1) + clip[CUT + 1:]


SCALES = {"symmetric x2": dict(sx=2.0), "asymmetric x1.5/x2.5": dict(sx=2.5, sy=1.5)}


@pytest.mark.parametrize("scale", SCALES.values(), ids=SCALES.keys())
def test_ort_matches_torch_on_real_frames(real_clip, tiny_checkpoint, scale):
    ref = clip_arrays(vssavsr.upscale(real_clip, **scale, checkpoint=tiny_checkpoint, device_index=-1))
    got = clip_arrays(vssavsr.upscale(real_clip, **scale, checkpoint=tiny_checkpoint, backend="ort"))
    assert got.shape == ref.shape == (LENGTH, 3, round(32 * scale.get("sy", scale["sx"])), round(40 * scale["sx"]))
    diff = np.abs(got - ref).max()
    assert diff <= 1 / 255, diff
    assert diff < 1e-4, diff  # in fact the same up to float rounding (~1e-6)


def test_ov_matches_torch_on_real_frames(real_clip, tiny_checkpoint):
    pytest.importorskip("openvino", reason="backend='ov' needs openvino (pip install openvino)")
    ref = clip_arrays(vssavsr.upscale(real_clip, sx=2, checkpoint=tiny_checkpoint, device_index=-1))
    got = clip_arrays(vssavsr.upscale(real_clip, sx=2, checkpoint=tiny_checkpoint, backend="ov"))
    assert np.abs(got - ref).max() < 1e-4


def test_export_cli_round_trip_agrees_with_pytorch(tmp_path, tiny_checkpoint, capsys):
    import onnx

    from vssavsr import onnx as cli

    out = tmp_path / "tiny.onnx"
    args = ["export", "--model", str(tiny_checkpoint), "--width", "40", "--height", "32", "--sx", "2", "-o", str(out)]
    assert cli.main(args + ["--check"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is the video pipe under vspipe: the exporter's chatter goes elsewhere
    assert "max |onnxruntime - PyTorch|" in captured.err
    graph = onnx.load(str(out))
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert [(v.name, dims(v)) for v in graph.graph.input] == [("frames", [1, 21, 32, 40])]
    assert [(v.name, dims(v)) for v in graph.graph.output] == [("hr", [1, 3, 64, 80])]
    float64 = onnx.TensorProto.DOUBLE
    assert all(t.data_type != float64 for t in graph.graph.initializer)  # TensorRT has no float64
    assert not [n for n in graph.graph.node if n.op_type == "Cast" and any(a.i == float64 for a in n.attribute)]

    from vssavsr.model import load_checkpoint

    net, _ = load_checkpoint(str(tiny_checkpoint))
    spec = GraphSpec((32, 40), (64, 80), (2.0, 2.0))
    assert cli.check_graph(net, spec, out, seed=1) < 1e-4


def test_cache_is_reused_and_rebuilt_when_the_checkpoint_changes(tmp_path, tiny_config, tiny_checkpoint):
    from vssavsr.model import SAVSR, load_checkpoint, save_checkpoint

    ckpt = tmp_path / "model.safetensors"
    shutil.copy(tiny_checkpoint, ckpt)
    exports = []
    target = backends.resolve("ort", -1, None)
    geo = dict(lr_size=(32, 40), out_size=(64, 80), scale=(2.0, 2.0))
    x = torch.rand(2, 7, 3, 32, 40)

    def run():  # the module's cache folder: the key is the file's content, so the x2 test's graph is reused
        net, _ = load_checkpoint(str(ckpt))
        r = backends.open_runner(target, ckpt, net, **geo, on_export=exports.append)
        return r, r(x, geo["out_size"], geo["scale"]), net

    first, y1, net1 = run()
    assert len(exports) <= 1 and first.path.is_file()
    stamp, count = first.path.stat().st_mtime_ns, len(exports)
    again, y2, _ = run()
    assert len(exports) == count and again.path == first.path and first.path.stat().st_mtime_ns == stamp
    assert torch.equal(y1, y2)

    torch.manual_seed(123)
    save_checkpoint(SAVSR(tiny_config).eval(), ckpt)  # same path, other weights
    changed, y3, net3 = run()
    assert len(exports) == count + 1 and changed.path != first.path and changed.path.parent == first.path.parent
    assert not torch.allclose(y1, y3)
    with torch.no_grad():
        ref = net3.eval().fuse_for_inference()(x, out_size=geo["out_size"], scale=geo["scale"]).clamp(0, 1)
    assert (y3 - ref).abs().max() < 1e-4
    # the key holds size, scale and precision: another scale is another file
    other = cached_graph_path(ckpt, GraphSpec((32, 40), (64, 100), (2.0, 2.5)))
    assert other != changed.path and "fp32" in other.name and "80x64" in changed.path.name


def _upscale_error(clip, **kw) -> str:
    with pytest.raises(vs.Error) as info:
        core.savsr.Upscale(clip, **kw)
    msg = str(info.value)
    assert msg.startswith("savsr.Upscale: "), msg
    return msg


def test_missing_runtime_names_backend_and_the_package(monkeypatch, tiny_checkpoint):
    clip = core.std.BlankClip(format=vs.RGBS, width=40, height=32, length=3)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    msg = _upscale_error(clip, sx=2, checkpoint=str(tiny_checkpoint), backend="ort")
    assert msg.startswith("savsr.Upscale: backend: ") and "pip install onnxruntime" in msg, msg
    monkeypatch.setitem(sys.modules, "openvino", None)
    msg = _upscale_error(clip, sx=2, checkpoint=str(tiny_checkpoint), backend="ov")
    assert "backend" in msg and "pip install openvino" in msg, msg
    if not eng.cuda_available():
        msg = _upscale_error(clip, sx=2, checkpoint=str(tiny_checkpoint), backend="trt")
        assert msg.startswith("savsr.Upscale: device_index: ") and "CUDA" in msg, msg
    else:
        monkeypatch.setitem(sys.modules, "tensorrt", None)
        msg = _upscale_error(clip, sx=2, checkpoint=str(tiny_checkpoint), backend="trt")
        assert "backend" in msg and "pip install tensorrt" in msg, msg


@pytest.mark.parametrize(
    "kw,words",
    [
        (dict(backend="onnx"), ["backend: ", "'torch', 'ort', 'ov', 'trt'"]),
        (dict(backend="ort", tile=64), ["tile: ", "whole frames", "backend='torch'"]),
        (dict(backend="ort", fp16=True), ["fp16: ", "CUDA"]),
        (dict(backend="trt", device_index=-1), ["device_index: ", "CUDA"]),
    ],
)
def test_bad_backend_arguments(tiny_checkpoint, kw, words):
    clip = core.std.BlankClip(format=vs.RGBS, width=40, height=32, length=3)
    msg = _upscale_error(clip, sx=2, checkpoint=str(tiny_checkpoint), **kw)
    for w in words:
        assert w in msg, msg


@pytest.mark.slow
def test_fp16_graph_agrees_with_the_fp32_network(tmp_path, tiny_checkpoint):
    from vssavsr import onnx as cli

    out = tmp_path / "tiny-fp16.onnx"
    cli.main(["export", "--model", str(tiny_checkpoint), "--width", "40", "--height", "32", "--sx", "2.5",
              "--sy", "1.5", "--fp16", "-o", str(out)])
    from vssavsr.model import load_checkpoint

    net, _ = load_checkpoint(str(tiny_checkpoint))
    spec = GraphSpec((32, 40), (48, 100), (1.5, 2.5), fp16=True)
    assert cli.check_graph(net, spec, out) < 5e-3  # fp16 network, fp32 sampling (onnxruntime on the CPU)


@pytest.mark.slow
def test_shipped_model_ort_matches_torch_on_real_frames(real_clip):
    ref = clip_arrays(vssavsr.upscale(real_clip, sx=2.5, sy=1.5, model="savsr-s", device_index=-1))
    got = clip_arrays(vssavsr.upscale(real_clip, sx=2.5, sy=1.5, model="savsr-s", backend="ort"))
    assert np.abs(got - ref).max() <= 1 / 255


def test_benchmark_runner_is_called_like_the_engine(tiny_checkpoint):
    """the benchmark's ort mode (scripts/benchmark/backends/graph.py): the same cached graph (the x2 geometry above), called like ModelRunner."""
    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    graph = importlib.import_module("benchmark.backends.graph")
    run = graph.graph_runner("ort", tiny_checkpoint, (32, 40), (64, 80), torch.device("cpu"))
    ref = eng.get_runner(tiny_checkpoint, torch.device("cpu"), False)
    x = torch.rand(2, 7, 3, 32, 40)
    got = run(x, (64, 80), (2.0, 2.0), (0.0, 0.0), None)
    assert got.shape == (2, 3, 64, 80) and got.dtype == torch.float32
    assert (got - ref(x, (64, 80), (2.0, 2.0)).clamp(0, 1)).abs().max() < 1e-4
