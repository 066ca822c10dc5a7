"""Real-footage validation (training.validation, evaluate --real), the ship rule and growing a deeper model.

The validation clips are the team's (../shared/data/validation); here stand-ins with the same names, made by
ffmpeg from its test sources, exercise the same reading, cropping and scoring without them.
"""

import dataclasses
import json
import shutil
import subprocess

import pytest
import torch

from training.grow import grow_into
from training.published import VID4 as PUBLISHED_VID4
from training.ship import verdict
from training.validation import FRAMES, VALIDATION_CLIPS, WINDOW, centre_crop, load_validation
from vssavsr.model import SAVSR

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


@pytest.fixture(scope="module")
def validation_folder(tmp_path_factory):
    """Stand-ins for the three clips: enough frames, larger than the window, the gray one lossless gray."""
    root = tmp_path_factory.mktemp("validation")
    for clip in VALIDATION_CLIPS:
        n = clip.first + FRAMES + 2
        fmt = ["-c:v", "ffv1", "-pix_fmt", "gray"] if clip.gray else ["-c:v", "ffv1", "-pix_fmt", "yuv420p"]
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=352x272:rate=25:duration={n / 25}",
             "-frames:v", str(n), *fmt, "-f", "matroska", str(root / clip.file)],
            check=True,
        )
    return root


def test_centre_crop_takes_the_middle_window():
    frames = torch.arange(2 * 1 * 250 * 330, dtype=torch.float32).view(2, 1, 250, 330)
    crop = centre_crop(frames)
    assert crop.shape[-2:] == WINDOW
    assert torch.equal(crop, frames[..., 5:245, 5:325])
    with pytest.raises(ValueError, match="smaller than"):
        centre_crop(frames[..., :200, :])


def test_load_validation_reads_nine_centre_frames_of_each_clip(validation_folder):
    clips = load_validation(validation_folder)
    assert list(clips) == [c.name for c in VALIDATION_CLIPS]
    for clip in VALIDATION_CLIPS:
        frames = clips[clip.name]
        assert frames.shape == (FRAMES, 3, *WINDOW)
        assert 0 <= frames.min() and frames.max() <= 1
        assert not torch.equal(frames[0], frames[-1])  # the test source moves: consecutive frames, not one
        if clip.gray:
            assert torch.equal(frames[:, 0], frames[:, 1]) and torch.equal(frames[:, 0], frames[:, 2])


def test_load_validation_names_the_missing_clip(tmp_path):
    with pytest.raises(FileNotFoundError, match=VALIDATION_CLIPS[0].file):
        load_validation(tmp_path)


def test_evaluate_real_scores_every_clip_and_marks_its_data(validation_folder, tmp_path):
    from training.evaluate import main

    res = main(["--real", "--real-data", str(validation_folder), "--scales", "2", "--out", str(tmp_path)])
    assert res["data"] == "real"
    per = res["per_sequence"]["Bicubic"]["x2"]
    assert set(per) == {c.name for c in VALIDATION_CLIPS}
    assert all(20 < v[0] < 60 for v in per.values())
    assert json.loads((tmp_path / "results.json").read_text())["data"] == "real"


def test_ship_rule_needs_real_x2_and_x4_higher_and_vid4_not_lower():
    vid4 = {s: 30.0 for s in PUBLISHED_VID4}
    real = {"x2": 36.0, "x4": 30.0}
    ok, lines = verdict({"x2": 36.1, "x4": 30.1}, vid4, real, vid4)
    assert ok and len(lines) == 3
    assert not verdict({"x2": 36.1, "x4": 30.0}, vid4, real, vid4)[0]  # x4 not higher
    lower = {**vid4, "x1.1": 29.0}
    ok, lines = verdict({"x2": 37.0, "x4": 31.0}, lower, real, vid4)
    assert not ok and "LOWER" in lines[-1]
    with pytest.raises(SystemExit, match="42 published scales"):
        verdict({"x2": 37.0, "x4": 31.0}, {"x2": 31.0}, real, vid4)


def test_grow_into_adds_identity_rcabs(tiny_config):
    torch.manual_seed(0)
    small = SAVSR(tiny_config).eval()
    big = SAVSR(dataclasses.replace(tiny_config, rcab_per_group=3)).eval()
    added = grow_into(big, small)
    assert added == ["reconstruction.groups.0.blocks.1", "reconstruction.groups.0.blocks.2"]
    x = torch.rand(2, 7, 3, 12, 14)
    with torch.no_grad():
        assert torch.equal(big(x, scale=2.5), small(x, scale=2.5))
    with pytest.raises(ValueError, match="num_kernels"):
        grow_into(SAVSR(dataclasses.replace(tiny_config, num_kernels=3, rcab_per_group=3)), small)
    with pytest.raises(ValueError, match="can only grow"):
        grow_into(small, big)


def test_grow_into_widens_the_trunk(tiny_config):
    torch.manual_seed(2)
    small = SAVSR(tiny_config).eval()
    wide = SAVSR(dataclasses.replace(tiny_config, channels=12)).eval()
    grown = grow_into(wide, small)
    assert "tail.weight" in grown and "upsampler.local_filter.predict.weight" in grown
    x = torch.rand(2, 7, 3, 12, 14)
    with torch.no_grad():
        assert torch.allclose(wide(x, scale=(1.5, 3.2)), small(x, scale=(1.5, 3.2)), atol=1e-5)
    # The added channels compute from the start: every weight reading them gets a gradient.
    loss = wide.train()(x, scale=2.0).square().mean()
    loss.backward()
    assert wide.tail.weight.grad[:, tiny_config.channels :].abs().sum() > 0
    with pytest.raises(ValueError, match="channels can only grow"):
        grow_into(small, wide)


def test_grow_into_widens_the_expert_bottleneck(tiny_config):
    torch.manual_seed(1)
    small = SAVSR(tiny_config).eval()  # expert_ratio 2: a 4-channel bottleneck
    wide = SAVSR(dataclasses.replace(tiny_config, expert_ratio=1, rcab_per_group=2)).eval()
    grown = grow_into(wide, small)
    assert "upsampler.experts.compress" in grown and "upsampler.experts.expand" in grown
    assert "reconstruction.groups.0.blocks.1" in grown
    x = torch.rand(2, 7, 3, 12, 14)
    with torch.no_grad():
        assert torch.allclose(wide(x, scale=(3.5, 2.0)), small(x, scale=(3.5, 2.0)), atol=1e-6)
    with pytest.raises(ValueError, match="expert_ratio can only shrink"):
        grow_into(SAVSR(dataclasses.replace(tiny_config, expert_ratio=4)), small)
