"""training.degrade and training.scales: asBI sizes (symmetric and asymmetric), evaluation sizes, the scale list and
curriculum."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.degrade import asbi, bicubic_resize, eval_sizes
from training.scales import (
    ASYMMETRIC_SCALES, REFERENCE_SCALES, SYMMETRIC_SCALES, ScaleSchedule, gt_patch_size, parse_scale, scale_label,
)


@pytest.mark.parametrize(
    "scale, gt",
    [((4.0, 4.0), (240, 240)), ((1.5, 3.5), (90, 210)), ((3.5, 1.5), (210, 90)), ((1.1, 1.1), (66, 66)),
     ((2.95, 3.75), (177, 225)), ((1.25, 1.25), (75, 75))],
)
def test_gt_patch_size_and_lr_size(scale, gt):
    assert gt_patch_size(60, scale) == gt
    frames = torch.rand(2, 7, 3, *gt)
    lr = asbi(frames, (60, 60))
    assert lr.shape == (2, 7, 3, 60, 60)
    assert 0.0 <= lr.min() and lr.max() <= 1.0


def test_asbi_is_antialiased_bicubic_and_accepts_uint8():
    gt = torch.randint(0, 256, (7, 3, 96, 144), dtype=torch.uint8)
    lr = asbi(gt, (48, 36))
    ref = F.interpolate(gt.float() / 255, size=(48, 36), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    assert lr.shape == (7, 3, 48, 36)
    torch.testing.assert_close(lr, ref)
    q = asbi(gt, (48, 36), quantize=True)
    torch.testing.assert_close(q * 255, torch.round(q * 255))


def test_bicubic_resize_matches_pil_bicubic_both_ways():
    # the evaluation's bicubic baseline: a = -0.5 (PIL / MATLAB imresize), enlarging and shrinking
    from PIL import Image

    torch.manual_seed(0)
    x = torch.rand(1, 1, 20, 28)
    for size in [(40, 70), (9, 13)]:
        ours = bicubic_resize(x, size)[0, 0]
        pil = Image.fromarray(x[0, 0].numpy(), mode="F").resize((size[1], size[0]), Image.BICUBIC)
        ref = torch.from_numpy(np.asarray(pil).copy()).clamp(0, 1)
        torch.testing.assert_close(ours, ref, atol=2e-4, rtol=0)


def test_eval_sizes():
    assert eval_sizes(576, 720, (4, 4)) == (144, 180, 576, 720)
    assert eval_sizes(576, 704, (3, 3)) == (192, 234, 576, 702)
    h, w, H, W = eval_sizes(480, 720, (1.5, 3.5))
    assert (h, w) == (320, 205) and (H, W) == (480, 717)
    h, w, H, W = eval_sizes(576, 720, (1.1, 1.1))
    assert (h, w, H, W) == (523, 654, 575, 719)


def test_scale_lists_and_labels():
    assert len(SYMMETRIC_SCALES) == 30 and SYMMETRIC_SCALES[0] == 1.1 and SYMMETRIC_SCALES[-1] == 4.0
    assert len(ASYMMETRIC_SCALES) == 30 and all(a != b for a, b in ASYMMETRIC_SCALES)
    assert len(REFERENCE_SCALES) == 60
    assert parse_scale("1.5/3.5") == (1.5, 3.5) and parse_scale("x2") == (2.0, 2.0) and parse_scale(3) == (3.0, 3.0)
    assert scale_label((1.5, 3.5)) == "x1.5/x3.5" and scale_label((2.0, 2.0)) == "x2"


def test_curriculum_phases_and_determinism():
    sch = ScaleSchedule.from_config({"curriculum": {"cycle": 100, "phases": [["x4", 4], ["integer", 2], ["random", 4]], "until": 200}})
    assert [sch.mode_at(i) for i in (0, 39, 40, 59, 60, 99, 100, 140, 199, 200, 5000)] == [
        "x4", "x4", "integer", "integer", "random", "random", "x4", "integer", "random", "random", "random"]
    rng = np.random.default_rng(0)
    assert sch.sample(10, rng) == (4.0, 4.0)
    assert sch.sample(45, rng) in [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
    drawn = {sch.sample(500, np.random.default_rng(k)) for k in range(400)}
    assert drawn <= set(REFERENCE_SCALES) and any(a != b for a, b in drawn)
    assert ScaleSchedule.from_config({"fixed": "2/3"}).sample(0, rng) == (2.0, 3.0)
