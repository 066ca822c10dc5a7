"""core.savsr.Upscale / vssavsr.upscale: sizes, and every bad input as a vs.Error naming the argument."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import vapoursynth as vs

import vssavsr
from vssavsr.engine import runner as eng
from vssavsr.plugin import native

core = vs.core


@pytest.fixture(scope="module", autouse=True)
def _namespace():
    native.ensure_namespace(core)


def blank(fmt=vs.YUV420P8, w=64, h=48, n=4, **kw):
    return core.std.BlankClip(format=fmt, width=w, height=h, length=n, **kw)


def up(clip, ckpt, **kw):
    return core.savsr.Upscale(clip, checkpoint=str(ckpt), **kw)


#: VapourSynth argument types (shim.c) and the Python annotations they stand for
VS_TYPES = {"vnode": "vs.VideoNode", "float": "float", "int": "int", "data": "str", "int[]": "Sequence[int]"}


def test_namespace_and_signature():
    sig = core.savsr.Upscale.signature
    for arg in ("sx:float", "sy:float", "width:int", "height:int", "src_left", "src_top", "src_width",
                "src_height", "checkpoint", "model", "device_index", "fp16", "tile", "batch"):
        assert arg in sig
    # the native argument list (shim.c) is vssavsr.upscale's, in order, with the same types and optional arguments
    native_args = [a.split(":") for a in sig.split(";") if a]
    python_args = inspect.signature(vssavsr.upscale).parameters
    assert [a[0] for a in native_args] == list(python_args)
    for name, vs_type, *opt in native_args:
        param = python_args[name]
        assert (opt == ["opt"]) == (param.default is None), name
        annotation = param.annotation if isinstance(param.annotation, str) else inspect.formatannotation(param.annotation)
        # VapourSynth has no bool: fp16 and scene_detect are int flags
        wanted = "bool" if name in ("fp16", "scene_detect") else VS_TYPES[vs_type]
        assert wanted in annotation, (name, vs_type, annotation)


@pytest.mark.parametrize(
    "kw,size",
    [
        (dict(sx=2), (128, 96)),
        (dict(sx=2.0, sy=1.5), (128, 72)),
        (dict(sx=1.37), (88, 66)),  # 87.68 -> 88, 65.76 -> 66 (even for 4:2:0)
        (dict(width=100), (100, 76)),  # height follows the aspect ratio (75 -> mod 2)
        (dict(height=60), (80, 60)),
        (dict(width=90, height=70), (90, 70)),
        (dict(width=64, src_left=16, src_width=32, src_height=24), (64, 48)),
        (dict(sx=2, src_width=-16), (96, 96)),  # like core.resize: <= 0 is relative to the right edge
    ],
)
def test_output_size(tiny_checkpoint, kw, size):
    out = up(blank(), tiny_checkpoint, **kw)
    assert (out.width, out.height) == size
    assert out.format.id == vs.YUV420P8 and out.num_frames == 4


def test_python_api_is_the_same_function(tiny_checkpoint):
    a = vssavsr.upscale(blank(vs.RGBS), 2.0, 1.5, checkpoint=tiny_checkpoint)
    b = core.savsr.Upscale(blank(vs.RGBS), 2.0, 1.5, checkpoint=str(tiny_checkpoint))
    assert (a.width, a.height, a.format.id) == (b.width, b.height, b.format.id) == (128, 72, vs.RGBS)


def _error(ckpt, clip=None, **kw):
    clip = blank() if clip is None else clip
    with pytest.raises(vs.Error) as info:
        core.savsr.Upscale(clip, checkpoint=str(ckpt), **kw) if "checkpoint" not in kw else core.savsr.Upscale(clip, **kw)
    msg = str(info.value)
    assert msg.startswith("savsr.Upscale"), msg
    return msg


@pytest.mark.parametrize(
    "kw,words",
    [
        (dict(sx=0), ["sx", "> 0"]),
        (dict(sx=-2), ["sx", "> 0"]),
        (dict(sx=math.nan), ["sx", "NaN"]),
        (dict(sx=2, sy=math.nan), ["sy", "NaN"]),
        (dict(sx=9), ["sx", "maximum"]),
        (dict(sx=2, sy=8.5), ["sy", "maximum"]),
        (dict(width=1000), ["width", "maximum"]),
        (dict(sx=2, width=128), ["sx/sy and width/height", "both"]),
        (dict(sy=2, height=96), ["both"]),
        (dict(), ["no output size"]),
        (dict(sy=2), ["sx", "sy was given without sx"]),
        (dict(width=0), ["width", "> 0"]),
        (dict(width=101), ["width", "multiple of 2"]),
        (dict(sx=2, src_width=-70), ["src_width", "> 0"]),
        (dict(sx=2, tile=[10]), ["tile"]),
        (dict(sx=2, tile=[-5]), ["tile"]),
        (dict(sx=2, batch=0), ["batch"]),
        (dict(sx=2, device_index=-2), ["device_index", "-1 for the CPU"]),
        (dict(sx=2, model="savsr-s"), ["checkpoint/model", "not both"]),
        (dict(sx=2, ensemble=3), ["ensemble", "1 (off), 2", "8"]),
        (dict(sx=2, ensemble=2, backend="ort"), ["ensemble", "backend='torch'"]),
    ],
)
def test_bad_arguments(tiny_checkpoint, kw, words):
    msg = _error(tiny_checkpoint, **kw)
    for w in words:
        assert w in msg, msg


def test_variable_format_and_size(tiny_checkpoint):
    varfmt = core.std.Splice([blank(vs.YUV420P8), blank(vs.RGB24)], mismatch=True)
    assert "variable format" in _error(tiny_checkpoint, varfmt, sx=2)
    varsize = core.std.Splice([blank(w=64), blank(w=80)], mismatch=True)
    assert "variable frame size" in _error(tiny_checkpoint, varsize, sx=2)


def test_clip_too_small(tiny_checkpoint):
    msg = _error(tiny_checkpoint, blank(vs.RGB24, w=3, h=3), sx=2)
    assert "too small" in msg and "clip" in msg


def test_device_errors(tiny_checkpoint):
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        msg = _error(tiny_checkpoint, sx=2, device_index=torch.cuda.device_count())
        assert "unknown CUDA device" in msg
    else:
        msg = _error(tiny_checkpoint, sx=2, device_index=0)
        assert "device_index" in msg and "CUDA is not available" in msg
        msg = _error(tiny_checkpoint, sx=2, fp16=True)
        assert "fp16" in msg and "CUDA" in msg


def test_checkpoint_errors(tmp_path, tiny_checkpoint):
    msg = _error(tiny_checkpoint, sx=2, checkpoint=str(tmp_path / "missing.safetensors"))
    assert "checkpoint" in msg and "no such file" in msg
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    msg = _error(tiny_checkpoint, sx=2, checkpoint=str(junk))
    assert "checkpoint" in msg and "junk.safetensors" in msg
    cut = tmp_path / "truncated.safetensors"
    cut.write_bytes(tiny_checkpoint.read_bytes()[:-1000])
    msg = _error(tiny_checkpoint, sx=2, checkpoint=str(cut))
    assert "checkpoint" in msg and "truncated" in msg


def test_model_names(tmp_path, monkeypatch, tiny_checkpoint):
    msg = _error(tiny_checkpoint, sx=2, model="edsr", checkpoint=None)
    assert "model" in msg and "savsr-s" in msg
    monkeypatch.setattr(eng, "weights_dir", lambda: tmp_path)
    msg = _error(tiny_checkpoint, sx=2, checkpoint=None)
    assert "no shipped weights" in msg and "checkpoint=" in msg
    msg = _error(tiny_checkpoint, sx=2, model="savsr", checkpoint=None)
    assert "model" in msg and "checkpoint=PATH" in msg
    (tmp_path / "savsr-s.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    out = core.savsr.Upscale(blank(), 2)  # the shipped default
    assert out.width == 128
    out = core.savsr.Upscale(blank(), 2, model="savsr-s")
    assert out.width == 128


def test_several_calls_share_one_model(tiny_checkpoint):
    eng.clear_runners()
    a = up(blank(), tiny_checkpoint, sx=2)
    b = up(blank(vs.RGB24), tiny_checkpoint, sx=1.5)
    assert len(eng._RUNNERS) == 1
    assert a.get_frame(0) and b.get_frame(0)


def _log_messages(fn):
    messages = []
    handle = core.add_log_handler(lambda kind, text: messages.append((kind, text)))
    try:
        fn()
    finally:
        core.remove_log_handler(handle)
    return [text for kind, text in messages if kind == vs.MESSAGE_TYPE_WARNING]


def test_a_tile_too_small_for_the_clip_logs_a_warning_with_a_better_size(tiny_checkpoint):
    clip = blank(w=320, h=240)
    warnings = _log_messages(lambda: up(clip, tiny_checkpoint, sx=2, tile=40))
    assert len(warnings) == 1
    text = warnings[0]
    assert "tile=[40, 40]" in text and "tile_pad=16" in text and "tiles" in text and "tile=[" in text.split("allows")[1]
    assert not _log_messages(lambda: up(clip, tiny_checkpoint, sx=2, tile=160))
    assert not _log_messages(lambda: up(clip, tiny_checkpoint, sx=2))
