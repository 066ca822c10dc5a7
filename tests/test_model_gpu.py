"""CUDA checks: autocast fp16 / bf16 and the 8 GB bound at 1080p (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from vssavsr.model import SAVSR

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_matches_fp32(tiny_config, dtype):
    torch.manual_seed(0)
    net = SAVSR(tiny_config).cuda().eval().fuse_for_inference()
    x = torch.rand(2, 7, 3, 33, 41, device="cuda")
    with torch.no_grad():
        ref = net(x, scale=(2.5, 3.5))
        with torch.autocast("cuda", dtype=dtype):
            low = net(x, scale=(2.5, 3.5))
    assert low.shape == ref.shape and torch.isfinite(low).all()
    err = ((low.float() - ref).norm() / ref.norm()).item()
    assert err < (1e-2 if dtype == torch.float16 else 3e-2), err


def test_half_model_runs(tiny_config):
    net = SAVSR(tiny_config).cuda().eval().half()
    with torch.no_grad():
        y = net(torch.rand(1, 7, 3, 17, 19, device="cuda", dtype=torch.half), out_size=(40, 50))
    assert y.dtype == torch.half and torch.isfinite(y).all()


@pytest.mark.slow
def test_1080p_x4_peak_memory_under_8_gb():
    net = SAVSR().cuda().eval().fuse_for_inference()
    x = torch.rand(1, 7, 3, 270, 480, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        y = net(x, out_size=(1080, 1920))
    torch.cuda.synchronize()
    assert y.shape == (1, 3, 1080, 1920)
    assert torch.cuda.max_memory_allocated() < 8 * 1024**3
