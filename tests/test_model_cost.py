"""Cost of the default model: MAC count and memory at 1080p, measured without running it.

Method: the default network runs on the ``meta`` device (shapes only; well under a second).
- MACs: ``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per multiply-accumulate of
  every convolution / matrix product; MACs = FLOPs / 2. For 1 x 7 x 3 x 180 x 320 -> x4 we
  measure 1.221 T MACs (the paper's "1.22 TFLOPs" is this MAC count); tolerance 2 %.
- Memory: ``vssavsr.model.flops.LiveTensorBytes`` (the benchmark's tracker too) records every tensor an op
  creates (fp16 model and input), adds its storage size while a tensor uses it and tracks the peak. 480 x 270 -> 1920 x 1080:
  about 1.9 GB of live activations (weights add 23 MB); bound asserted: 6 GB, leaving 2 GB
  for allocator slack and convolution workspaces under the 8 GB requirement (the CUDA test
  in test_model_gpu.py measures the real peak when a GPU is present).
"""

from __future__ import annotations

import torch

from vssavsr.model import SAVSR
from vssavsr.model.flops import LiveTensorBytes, count_macs


def test_default_model_costs_1_22_t_macs_at_320x180_x4():
    macs = count_macs("savsr", in_size=(180, 320), scale=4.0)
    assert abs(macs["total"] - 1.22e12) / 1.22e12 < 0.02, macs["total"]
    # "about three quarters of the work is in the two recurrent units"
    assert 0.7 < macs["by_module"]["alignment"] / macs["total"] < 0.8


def test_1080p_x4_fits_in_8_gb_fp16_and_nothing_scales_with_hw_c_squared():
    with torch.device("meta"):
        net = SAVSR().eval().half()
        frames = torch.empty(1, 7, 3, 270, 480, dtype=torch.float16)
    tracker = LiveTensorBytes()
    with torch.no_grad(), tracker:
        out = net(frames, out_size=(1080, 1920))
    assert out.shape == (1, 3, 1080, 1920)
    assert tracker.peak < 6e9, tracker.peak
    hw, c = 1080 * 1920, net.config.channels
    # the largest single tensor is one HR feature map (fp32 bilinear sampling): H*W*C*4 bytes,
    # far from the H*W*C^2 values per-pixel expert matrices would take
    assert tracker.largest <= hw * c * 4
    assert tracker.largest < hw * c * c // 8


def test_upsampler_allocates_nothing_proportional_to_hw_c_squared():
    with torch.device("meta"):
        net = SAVSR().eval().half()
        r = torch.empty(1, 64, 270, 480, dtype=torch.float16)
    from vssavsr.model.upsampler import make_hr_grid

    grid = make_hr_grid((1080, 1920), (4.0, 4.0), (0.0, 0.0), torch.device("meta"))
    tracker = LiveTensorBytes()
    with torch.no_grad(), tracker:
        net.upsampler(r, r, grid)
    hw, c = 1080 * 1920, 64
    assert tracker.largest <= hw * c * 4  # one fp32 HR map of C channels
    assert tracker.peak < 2.5e9, tracker.peak
