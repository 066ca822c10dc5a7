"""NumPy arrays in and out of clips (vssavsr.plugin.arrays)."""

from __future__ import annotations

import numpy as np
import pytest
import vapoursynth as vs

from vssavsr.plugin.arrays import clip_arrays, clip_from_arrays, frame_array


def test_float_frames_come_back_unchanged():
    rng = np.random.default_rng(0)
    frames = rng.random((4, 3, 12, 20), dtype=np.float32)
    clip = clip_from_arrays(frames, fpsnum=25)
    assert (clip.format.id, clip.width, clip.height, clip.num_frames, clip.fps) == (vs.RGBS, 20, 12, 4, 25)
    np.testing.assert_array_equal(clip_arrays(clip), frames)


def test_integer_frames_and_a_lazy_sequence():
    class Ramp:  # computes frame n on request
        def __len__(self):
            return 3

        def __getitem__(self, n):
            return np.full((3, 4, 6), 10 * n, dtype=np.uint8)

    clip = clip_from_arrays(Ramp(), format=vs.RGB24)
    assert frame_array(clip.get_frame(2)).dtype == np.uint8
    assert [int(frame_array(f).max()) for f in clip.frames()] == [0, 10, 20]


def test_gray_has_one_plane():
    clip = clip_from_arrays([np.full((1, 5, 7), 0.25, dtype=np.float32)], format=vs.GRAYS)
    assert frame_array(clip.get_frame(0)).shape == (1, 5, 7)


def test_floats_into_an_integer_format_raise_instead_of_truncating():
    clip = clip_from_arrays([np.full((3, 4, 4), 0.5)], format=vs.RGB24)
    with pytest.raises(vs.Error, match="Cannot cast"):
        clip.get_frame(0)


@pytest.mark.parametrize("frames,fmt,match", [
    ([], vs.RGBS, "empty"),
    ([np.zeros((4, 4))], vs.RGBS, r"needs \(3, height, width\)"),
    ([np.zeros((3, 4, 4))], vs.YUV420P8, "subsampled"),
])
def test_wrong_input_names_the_fix(frames, fmt, match):
    with pytest.raises(ValueError, match=match):
        clip_from_arrays(frames, format=fmt)


def test_a_frame_of_another_size_names_its_index():
    clip = clip_from_arrays([np.zeros((3, 4, 4), np.float32), np.zeros((3, 5, 4), np.float32)])
    with pytest.raises(vs.Error, match=r"frames\[1\] has shape"):
        clip.get_frame(1)


def test_subsampled_frames_are_refused():
    yuv = vs.core.std.BlankClip(format=vs.YUV420P8, width=8, height=8, length=1)
    with pytest.raises(ValueError, match="subsampled"):
        frame_array(yuv.get_frame(0))
