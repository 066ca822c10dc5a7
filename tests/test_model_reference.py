"""The fast, exact reformulations agree with the literal reference forms (fp32, rel. err <= 1e-5)."""

from __future__ import annotations

import pytest
import torch

from vssavsr.model import SAVSR, SAVSRConfig
from vssavsr.model import reference
from vssavsr.model.layers import ConvBN
from vssavsr.model.osconv import OSConv
from vssavsr.model.upsampler import ExpertMixture, LocalFilter

from tests.netutil import randomise_batchnorm, randomise_offsets

RTOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_local_filter_accumulation_matches_unfold():
    torch.manual_seed(0)
    lf = LocalFilter(6, 5)
    r, a = torch.randn(2, 6, 9, 11), torch.randn(2, 6, 9, 11)
    filters = torch.nn.functional.leaky_relu(lf.predict(a), 0.1)
    assert rel_err(lf.accumulate(r, filters), reference.local_filter_reference(r, filters, 5)) <= RTOL


def test_local_filter_hand_written_backward_matches_autograd_of_the_literal_form():
    torch.manual_seed(0)
    lf = LocalFilter(3, 5).double()
    r = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(2, 75, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lf.accumulate, (r, filters))
    weights = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    fast = torch.autograd.grad((lf.accumulate(r, filters) * weights).sum(), (r, filters))
    ref = torch.autograd.grad((reference.local_filter_reference(r, filters, 5) * weights).sum(), (r, filters))
    assert all(rel_err(a, b) <= RTOL for a, b in zip(fast, ref))
    fixed = filters.detach()  # only one input needs a gradient
    only_r = torch.autograd.grad(lf.accumulate(r, fixed).sum(), r)[0]
    assert rel_err(only_r, torch.autograd.grad(reference.local_filter_reference(r, fixed, 5).sum(), r)[0]) <= RTOL


def test_expert_output_mixing_matches_per_pixel_matrices():
    torch.manual_seed(0)
    mix = ExpertMixture(16, 4, 8)
    g = torch.randn(3, 16, 7, 10)
    for route in (torch.rand(1, 4, 7, 10), torch.rand(3, 4, 7, 10)):
        fast = mix(g, route)
        ref = reference.expert_mix_reference(g, route, mix.compress, mix.expand)
        assert rel_err(fast, ref) <= RTOL


@pytest.mark.parametrize("batch", [1, 3])
def test_osconv_grouped_folded_kernel_matches_per_sample_literal(batch):
    torch.manual_seed(0)
    conv = OSConv(8, num_kernels=3, hidden=4).eval()
    randomise_batchnorm(conv)
    x, inv = torch.randn(batch, 8, 6, 7), torch.rand(batch, 2)
    fast = conv(x, inv)
    conv.reference_mode = True
    assert rel_err(fast, conv(x, inv)) <= RTOL


def test_folded_batchnorm_matches_conv_then_batchnorm():
    torch.manual_seed(0)
    layer = ConvBN(5, 4, 3).eval()
    randomise_batchnorm(layer)
    x = torch.randn(2, 5, 8, 8)
    unfused = layer(x)
    layer.fuse()
    assert layer.is_fused
    assert rel_err(layer(x), unfused) <= RTOL
    layer.train()
    assert not layer.is_fused


def test_whole_network_fast_fused_and_reference_agree(tiny_config):
    torch.manual_seed(0)
    net = SAVSR(tiny_config)
    randomise_batchnorm(net)
    randomise_offsets(net)
    net.eval()
    x = torch.rand(2, 7, 3, 11, 14)
    with torch.no_grad():
        fast = net(x, out_size=(30, 33))
        fused = net.fuse_for_inference()(x, out_size=(30, 33))
        ref = net.set_reference_mode(True)(x, out_size=(30, 33))
        back = net.set_reference_mode(False)(x, out_size=(30, 33))
    assert rel_err(fast, ref) <= RTOL
    assert rel_err(fused, ref) <= RTOL
    assert torch.equal(back, fused)


def test_fuse_needs_eval_and_state_dict_is_unchanged(tiny_config):
    net = SAVSR(tiny_config)
    with pytest.raises(RuntimeError, match="eval"):
        net.fuse_for_inference()
    keys = list(net.state_dict())
    net.eval().fuse_for_inference()
    assert list(net.state_dict()) == keys
    net.load_state_dict(SAVSR(tiny_config).state_dict())
    assert not any(m.is_fused for m in net.modules() if isinstance(m, ConvBN))


def test_reference_mode_reaches_every_reformulated_module():
    net = SAVSR(SAVSRConfig(channels=8, recurrent_blocks=2, fusion_blocks=1, residual_groups=1, rcab_per_group=1))
    net.set_reference_mode(True)
    flagged = [m for m in net.modules() if isinstance(m, (OSConv, ConvBN, LocalFilter, ExpertMixture))]
    assert flagged and all(m.reference_mode for m in flagged)
