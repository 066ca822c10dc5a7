"""SAVSR forward: output shapes for many scales, odd sizes, scale validation, coordinate mapping."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from vssavsr.model import SAVSR
from vssavsr.model.upsampler import make_hr_grid, sample_lr


@pytest.fixture(scope="module")
def tiny_net(tiny_config):
    torch.manual_seed(0)
    return SAVSR(tiny_config).eval()


def frames(b=1, h=12, w=14, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, h, w, generator=g)


@pytest.mark.parametrize(
    "scale",
    [(2.0, 2.0), (4.0, 4.0), (1.1, 1.1), (2.7, 2.7), (1.1, 4.0), (3.9, 2.0), (1.5, 3.5), (4.0, 1.0)],
)
def test_shapes_for_symmetric_non_integer_and_asymmetric_scales(tiny_net, scale):
    x = frames()
    sy, sx = scale
    size = (math.floor(12 * sy), math.floor(14 * sx))
    with torch.no_grad():
        by_size = tiny_net(x, out_size=size)
        by_scale = tiny_net(x, scale=scale)
    assert by_size.shape == (1, 3, *size)
    assert by_scale.shape == (1, 3, *size)
    assert torch.isfinite(by_size).all()


@pytest.mark.parametrize("hw", [(11, 13), (12, 13), (11, 14), (5, 7), (4, 4)])
def test_odd_and_small_input_sizes(tiny_net, hw):
    h, w = hw
    x = frames(b=2, h=h, w=w)
    with torch.no_grad():
        y = tiny_net(x, out_size=(2 * h + 1, 3 * w - 1))
    assert y.shape == (2, 3, 2 * h + 1, 3 * w - 1)
    assert torch.isfinite(y).all()


def test_batch_items_are_independent(tiny_net):
    x = frames(b=3)
    with torch.no_grad():
        full = tiny_net(x, out_size=(30, 35))
        one = tiny_net(x[1:2], out_size=(30, 35))
    torch.testing.assert_close(full[1:2], one, rtol=1e-5, atol=1e-5)


def test_scale_one_gives_identity_sized_plausible_output(tiny_net):
    x = frames(h=12, w=14)
    with torch.no_grad():
        y = tiny_net(x, out_size=(12, 14))
        skip = sample_lr(x[:, 3], make_hr_grid((12, 14), (1.0, 1.0), (0.0, 0.0), x.device), padding_mode="border")
    assert y.shape == (1, 3, 12, 14)
    assert torch.isfinite(y).all()
    # the bilinear skip at scale 1 is the centre frame itself; the learned part is a residual on it
    torch.testing.assert_close(skip, x[:, 3], rtol=0, atol=1e-6)


def test_skip_matches_interpolate_and_offsets_reproduce_global_grid():
    x = torch.rand(2, 3, 9, 11)
    grid = make_hr_grid((31, 26), (31 / 9, 26 / 11), (0.0, 0.0), x.device)
    ours = sample_lr(x, grid, padding_mode="border")
    ref = F.interpolate(x, size=(31, 26), mode="bilinear", align_corners=False)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # a crop of the LR frame at (y0, x0) asked for the HR block starting at (i0, j0)
    sy, sx = 31 / 9, 26 / 11
    y0, x0, i0, j0 = 2, 3, 10, 9
    tile = make_hr_grid((12, 10), (sy, sx), (i0 / sy - y0, j0 / sx - x0), x.device)
    part = sample_lr(x[..., y0:, x0:], tile, padding_mode="border")
    torch.testing.assert_close(part, ours[..., i0 : i0 + 12, j0 : j0 + 10], rtol=1e-5, atol=1e-5)


def test_phase_follows_the_contract():
    grid = make_hr_grid((8, 4), (2.5, 1.0), (0.25, 0.0), torch.device("cpu"))
    u = (torch.arange(8, dtype=torch.float64) + 0.5) / 2.5 + 0.25
    torch.testing.assert_close(grid.phase_y.double(), u - torch.floor(u + 0.001) - 0.5, rtol=0, atol=1e-6)
    torch.testing.assert_close(grid.ys.double(), u - 0.5, rtol=0, atol=1e-6)
    assert torch.all(grid.phase_x == 0)


@pytest.mark.parametrize("scale", [4.5, (2.0, 8.0), 0.5])
def test_scales_outside_trained_range_warn(tiny_net, scale):
    with pytest.warns(RuntimeWarning, match="outside the trained range"), torch.no_grad():
        y = tiny_net(frames(h=8, w=8), scale=scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("scale", [8.5, (2.0, 9.0), 0.0, -1.0, float("nan"), float("inf")])
def test_bad_scales_raise(tiny_net, scale):
    with pytest.raises(ValueError, match="scale"):
        tiny_net(frames(h=8, w=8), scale=scale)


def test_out_size_too_large_raises_and_trained_range_is_silent(tiny_net):
    with pytest.raises(ValueError, match="sx"):
        tiny_net(frames(h=8, w=8), out_size=(16, 80))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            tiny_net(frames(h=8, w=8), out_size=(32, 8))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(1, 7, 3, 3, 12), "at least 4x4"),
        (torch.rand(1, 5, 3, 12, 12), "7 frames"),
        (torch.rand(1, 7, 1, 12, 12), "7 frames of 3 channels"),
        (torch.rand(7, 3, 12, 12), "shape"),
        (torch.zeros(1, 7, 3, 12, 12, dtype=torch.uint8), "floating-point"),
    ],
)
def test_bad_frames_raise(tiny_net, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_net(bad, out_size=(24, 24))


def test_out_size_or_scale_required(tiny_net):
    with pytest.raises(ValueError, match="out_size"):
        tiny_net(frames())
    with pytest.raises(ValueError, match="out_size"):
        tiny_net(frames(), out_size=(0, 5))
