"""Formats: every family and depth in and out, per-frame matrices, props kept, SAR updated,
and the src_* window matching core.resize's coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vapoursynth as vs

from vssavsr.plugin import formats, native

from vssavsr.plugin.arrays import clip_from_arrays

core = vs.core


@pytest.fixture(scope="module", autouse=True)
def _namespace():
    native.ensure_namespace(core)


@pytest.fixture(scope="module")
def skip_checkpoint(tiny_config, tmp_path_factory):
    """The tiny model with its last conv zeroed: its output is exactly the bilinear upscale of
    the centre frame (the model's skip path), so colours and geometry can be checked exactly."""
    from vssavsr.model import SAVSR, save_checkpoint

    torch.manual_seed(0)
    net = SAVSR(tiny_config).eval()
    for p in net.tail.parameters():
        torch.nn.init.zeros_(p)
    path = tmp_path_factory.mktemp("skip") / "skip.safetensors"
    save_checkpoint(net, path)
    return str(path)




def planes(frame):
    return [np.asarray(frame[p]).astype(np.float64) for p in range(frame.format.num_planes)]


FORMATS = [
    vs.RGB24, vs.RGB30, vs.RGB48, vs.RGBH, vs.RGBS,
    vs.YUV420P8, vs.YUV420P10, vs.YUV422P8, vs.YUV444P16, vs.YUV410P8, vs.YUV420PH, vs.YUV444PS,
    vs.GRAY8, vs.GRAY12, vs.GRAY16, vs.GRAYH, vs.GRAYS,
]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: core.get_video_format(f).name)
def test_every_format_comes_back_in_its_format(skip_checkpoint, fmt):
    f = core.get_video_format(fmt)
    if f.sample_type == vs.FLOAT:
        color = {vs.RGB: [0.2, 0.5, 0.7], vs.YUV: [0.5, 0.1, -0.1], vs.GRAY: [0.4]}[f.color_family]
    else:
        k = 1 << (f.bits_per_sample - 8)
        color = {vs.RGB: [51 * k, 128 * k, 178 * k], vs.YUV: [100 * k, 110 * k, 150 * k], vs.GRAY: [102 * k]}[f.color_family]
    clip = core.std.BlankClip(format=fmt, width=64, height=48, length=3, color=color)
    out = core.savsr.Upscale(clip, 1.5, checkpoint=skip_checkpoint)
    assert out.format.id == fmt and (out.width, out.height) == (96, 72) and out.num_frames == 3
    got = planes(out.get_frame(1))
    tol = 2e-3 if f.sample_type == vs.FLOAT else 1
    for p, c in zip(got, color):
        assert np.abs(p - c).max() <= tol, (f.name, c, p.min(), p.max())


def test_real_content_in_yuv_and_gray(skip_checkpoint, real_frames):
    rgb = clip_from_arrays(real_frames(3, (48, 64)))
    yuv = core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix=6)
    out = core.savsr.Upscale(yuv, 2, checkpoint=skip_checkpoint)
    ref = core.resize.Bilinear(yuv, 128, 96)
    a, b = planes(out.get_frame(1)), planes(ref.get_frame(1))
    # Same picture as a bilinear upscale (inside the border, where edge handling differs).
    assert np.abs(a[0][4:-4, 4:-4] - b[0][4:-4, 4:-4]).mean() < 1.0
    gray = core.std.ShufflePlanes(yuv, 0, vs.GRAY)
    g = planes(core.savsr.Upscale(gray, 2, checkpoint=skip_checkpoint).get_frame(1))[0]
    assert np.abs(g[4:-4, 4:-4] - b[0][4:-4, 4:-4]).mean() < 1.0


@pytest.mark.parametrize(
    "kw",
    [
        dict(width=128, height=96),
        dict(width=100, height=77),
        dict(width=96, height=64, src_left=3.5, src_top=2.25, src_width=40, src_height=30),
        dict(width=80, height=60, src_left=-0.5, src_top=1, src_width=60.5, src_height=44),
    ],
)
def test_src_window_matches_core_resize(skip_checkpoint, real_frames, kw):
    rgb = clip_from_arrays(real_frames(1, (48, 64)))
    out = planes(core.savsr.Upscale(rgb, checkpoint=skip_checkpoint, **kw).get_frame(0))
    ref = planes(core.resize.Bilinear(rgb, **kw).get_frame(0))
    for a, b in zip(out, ref):
        assert np.abs(a[6:-6, 6:-6] - b[6:-6, 6:-6]).max() < 2e-3


def test_per_frame_matrix_and_defaults():
    yuv = core.std.BlankClip(format=vs.YUV444P8, width=64, height=48, length=4, color=[120, 90, 170])
    tagged = [
        core.std.SetFrameProps(yuv[0], _Matrix=1),
        core.std.SetFrameProps(yuv[1], _Matrix=6),
        yuv[2],  # unset: SD -> BT.470BG
        core.std.SetFrameProps(yuv[3], _Matrix=2),  # unspecified -> default
    ]
    rgb = formats.to_rgbs(core.std.Splice(tagged))
    px = [planes(rgb.get_frame(n))[0][0, 0] for n in range(4)]
    ref709 = planes(core.resize.Point(yuv, format=vs.RGBS, matrix_in=1).get_frame(0))[0][0, 0]
    ref601 = planes(core.resize.Point(yuv, format=vs.RGBS, matrix_in=5).get_frame(0))[0][0, 0]
    assert px[0] == pytest.approx(ref709, abs=1e-6)
    assert px[1] == pytest.approx(ref601, abs=1e-6)
    assert px[2] == pytest.approx(ref601, abs=1e-6) and px[3] == pytest.approx(ref601, abs=1e-6)
    hd = core.std.BlankClip(format=vs.YUV444P8, width=1280, height=720, length=1, color=[120, 90, 170])
    assert planes(formats.to_rgbs(hd).get_frame(0))[0][0, 0] == pytest.approx(ref709, abs=1e-6)


def test_full_range_round_trip(skip_checkpoint):
    yuv = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=2, color=[250, 128, 128])
    full = core.std.SetFrameProps(yuv, _Range=1)
    out = core.savsr.Upscale(full, 2, checkpoint=skip_checkpoint).get_frame(0)
    assert out.props["_Range"] == 1
    got = planes(out)
    for p, c in zip(got, [250, 128, 128]):  # above 235: clipped if taken as limited
        assert np.abs(p - c).max() <= 1


def test_props_kept_and_sar_updated(skip_checkpoint):
    clip = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=3)
    clip = core.std.SetFrameProps(clip, Custom=7, _SceneChangePrev=1, _FieldBased=0)
    out = core.savsr.Upscale(clip, 2, 1, checkpoint=skip_checkpoint)  # 128x48
    props = out.get_frame(0).props
    assert props["Custom"] == 7 and props["_SceneChangePrev"] == 1 and props["_FieldBased"] == 0
    assert "_Matrix" not in props  # not invented: the input had none
    # display aspect ratio kept: 128 * SAR / 48 == 64 / 48
    assert (props["_SARNum"], props["_SARDen"]) == (1, 2)
    sym = core.savsr.Upscale(clip, 2, checkpoint=skip_checkpoint).get_frame(0).props
    assert "_SARNum" not in sym
    anamorphic = core.std.SetFrameProps(clip, _SARNum=4, _SARDen=3)
    props = core.savsr.Upscale(anamorphic, 1.5, 3, checkpoint=skip_checkpoint).get_frame(0).props
    assert (props["_SARNum"], props["_SARDen"]) == (8, 3)  # 4/3 * sy / sx
    props = core.savsr.Upscale(anamorphic, 2, checkpoint=skip_checkpoint).get_frame(0).props
    assert (props["_SARNum"], props["_SARDen"]) == (4, 3)
    crop = core.savsr.Upscale(clip, width=64, height=48, src_width=32, checkpoint=skip_checkpoint)
    props = crop.get_frame(0).props
    assert (props["_SARNum"], props["_SARDen"]) == (1, 2)
