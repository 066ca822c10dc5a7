"""The geometric self-ensemble (vssavsr.engine.ensemble): flipped and transposed copies land back on the plain
call's HR grid, at any scale and offset, with tiles and through the plugin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vapoursynth as vs

from vssavsr.engine import runner as eng
from vssavsr.engine.ensemble import SIZES, check_size, ensemble_forward
from vssavsr.model.upsampler import make_hr_grid, sample_lr
from vssavsr.plugin import native

from vssavsr.plugin.arrays import clip_from_arrays, frame_array

core = vs.core


def resample(frames, out_size, scale, offset, tile=None):
    """Bilinear resampling of the centre frame at the model's HR grid: mirror-equivariant exactly when the
    mirrored copy's grid is the mirror image of the plain one's."""
    return sample_lr(frames[:, frames.shape[1] // 2], make_hr_grid(out_size, scale, offset, frames.device),
                     padding_mode="border")


@pytest.mark.parametrize("size", [2, 4, 8])
@pytest.mark.parametrize("out_size,scale,offset", [
    ((26, 34), (2.0, 2.0), (0.0, 0.0)),
    ((30, 29), (2.35, 1.73), (0.3, -0.7)),  # W != w * s: the mirrored copies need shifted offsets
    ((20, 40), (1.5, 2.4), (0.1, 0.2)),
])
def test_every_copy_samples_the_plain_grid(size, out_size, scale, offset):
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 3, 13, 17)
    plain = resample(frames, out_size, scale, offset)
    got = ensemble_forward(resample, frames, out_size, scale, offset, size)
    torch.testing.assert_close(got, plain, atol=2e-6, rtol=0)


def test_copies_are_the_flips_and_transposes_and_tiles_turn_with_them():
    frames = torch.rand(1, 3, 1, 6, 10)
    seen = []

    def record(x, out_size, scale, offset, tile):
        seen.append((tuple(x.shape[-2:]), tuple(out_size), tuple(scale), tile))
        return torch.zeros(x.shape[0], 1, *out_size)

    out = ensemble_forward(record, frames, (12, 30), (2.0, 3.0), (0.0, 0.0), 8, tile=(4, 8))
    assert out.shape == (1, 1, 12, 30)
    assert seen[:4] == [((6, 10), (12, 30), (2.0, 3.0), (4, 8))] * 4
    assert seen[4:] == [((10, 6), (30, 12), (3.0, 2.0), (8, 4))] * 4
    assert len(SIZES) == 4 and check_size(8) == 8
    with pytest.raises(ValueError, match=r"3 copies: use 1 \(off\), 2"):
        check_size(3)


def test_runner_ensemble_of_two_is_the_mean_of_the_plain_and_the_mirrored_call(tiny_checkpoint):
    runner = eng.get_runner(tiny_checkpoint, torch.device("cpu"), False)
    torch.manual_seed(1)
    x = torch.rand(1, runner.num_frames, 3, 24, 32)
    plain = runner(x, (48, 64), (2.0, 2.0))
    mirrored = runner(x.flip(-1), (48, 64), (2.0, 2.0)).flip(-1)
    torch.testing.assert_close(runner(x, (48, 64), (2.0, 2.0), ensemble=2), (plain + mirrored) / 2)
    tiled = runner(x, (48, 64), (2.0, 2.0), tile=(16, 20), tile_pad=4, ensemble=8)
    torch.testing.assert_close(tiled, runner(x, (48, 64), (2.0, 2.0), ensemble=8), atol=2e-3, rtol=0)


def test_plugin_ensemble_changes_the_output_a_little_and_keeps_its_size(tiny_checkpoint, real_frames):
    native.ensure_namespace(core)
    clip = clip_from_arrays(real_frames(7, (48, 64)))
    plain = core.savsr.Upscale(clip, 1.5, checkpoint=str(tiny_checkpoint))
    four = core.savsr.Upscale(clip, 1.5, checkpoint=str(tiny_checkpoint), ensemble=4)
    assert (four.width, four.height) == (plain.width, plain.height) == (96, 72)
    a, b = (frame_array(c.get_frame(3)) for c in (plain, four))
    assert 0 < np.abs(a - b).max() < 0.1
