"""Training behaviour: every parameter gets a gradient; BatchNorm with batch 1."""

from __future__ import annotations

import warnings

import pytest
import torch

from vssavsr.model import SAVSR
from vssavsr.model.osconv import OSConv


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradients_reach_every_parameter(tiny_config, mode):
    """Every parameter is connected to the output (grad not None) in both modes, and gets a
    non-zero gradient with frozen BatchNorm (eval). In train mode a few routing-MLP biases of an
    OSConv can get exactly zero: the trunk's 1 x 1 conv + training BatchNorm removes anything
    constant over the batch, and a bias shift is constant over the batch wherever the ReLU
    pattern is (a property of the design, not a broken connection). With only C = 8 routing
    units a random init can leave an OSConv's routing ReLUs all dead, so their last bias is
    nudged positive first."""
    torch.manual_seed(0)
    net = SAVSR(tiny_config).train(mode == "train")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, OSConv):
                m.route[2].bias.fill_(0.1)
    x = torch.rand(2, 7, 3, 11, 12)
    out = net(x, scale=(1.5, 2.5))
    (out.square().mean()).backward()
    unconnected = [n for n, p in net.named_parameters() if p.grad is None]
    assert not unconnected, unconnected
    if mode == "eval":
        zero = [n for n, p in net.named_parameters() if not torch.any(p.grad != 0)]
        assert not zero, zero


def test_training_updates_batchnorm_statistics(tiny_config):
    net = SAVSR(tiny_config).train()
    bn = net.alignment.forward_unit.blocks[1].refine.trunk.bn
    before = bn.running_mean.clone()
    net(torch.rand(2, 7, 3, 8, 8), scale=2.0)
    assert not torch.equal(before, bn.running_mean)


def test_batch_of_one_trains_with_a_warning_and_eval_is_silent(tiny_config):
    net = SAVSR(tiny_config).train()
    x = torch.rand(1, 7, 3, 8, 8)
    with pytest.warns(RuntimeWarning, match="batch >= 2"):
        out = net(x, scale=2.0)
    out.mean().backward()
    assert net.tail.weight.grad is not None
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            net(x, scale=2.0)


def test_output_is_differentiable_with_respect_to_frames(tiny_config):
    net = SAVSR(tiny_config).eval()
    x = torch.rand(1, 7, 3, 8, 9, requires_grad=True)
    net(x, out_size=(20, 20)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # every frame of the window influences the centre output
    assert all(x.grad[0, t].abs().sum() > 0 for t in range(7))
