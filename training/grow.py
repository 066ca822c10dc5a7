"""Start a larger network from a trained smaller one, computing exactly the same function at step 0.

Used by ``train --init`` when the requested model is larger than the init weights (``init_grow: true`` in the
config). Two ways to grow are supported, each keeping the source's output:
- more RCABs per residual group (``rcab_per_group`` up): every added RCAB gets a zero last convolution, which
  makes it the identity (``x + CA(0) = x``);
- a wider expert bottleneck in the upsampler (``expert_ratio`` down): the added compress rows keep their random
  initialisation and the matching expand columns start at zero, so they add nothing until trained;
- a wider trunk (``channels`` up): every tensor keeps the source's entries at the old channels' places (in a
  concatenation of C-channel features each block moves; the OSConv route's two scale inputs stay in front);
  added output rows keep their random initialisation and old outputs' weights on added inputs start at zero,
  so the added channels compute from the start but nothing old reads them until trained. The grown network
  is checked against the source on a random window.
Training then starts from the source's quality instead of from scratch, so capacity can be A/B-tested against a
plain stage from the same weights.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vssavsr.model.blocks import RCAB

__all__ = ["grow_into"]

#: field -> +1 where it may only increase, -1 where it may only decrease
_GROWABLE = {"rcab_per_group": +1, "expert_ratio": -1, "channels": +1}


def _check_growable(small, big) -> None:
    for f in dataclasses.fields(small):
        a, b = getattr(small, f.name), getattr(big, f.name)
        if f.name in _GROWABLE:
            if (b - a) * _GROWABLE[f.name] < 0:
                way = "grow" if _GROWABLE[f.name] > 0 else "shrink"
                raise ValueError(f"init_grow: {f.name} can only {way} ({a} in the init weights, {b} requested)")
        elif a != b:
            raise ValueError(
                f"init_grow: the init weights differ from the requested model in {f.name} ({a} vs {b}); "
                f"only {', '.join(_GROWABLE)} may differ"
            )


def _old_places(old: int, new: int, c_old: int, c_new: int) -> torch.Tensor:
    """Indices of one dimension's ``old`` entries once it holds ``new``: the same, r leading entries then n blocks
    of C (a concatenation), or a prefix (a width that is a fraction of C)."""
    n, r = divmod(old, c_old)
    if old != new and n and new == n * c_new + r:
        blocks = torch.arange(n).repeat_interleave(c_old) * c_new + torch.arange(c_old).repeat(n)
        return torch.cat([torch.arange(r), r + blocks])
    return torch.arange(old)


def _input_dim(src: torch.Tensor, own: torch.Tensor) -> int | None:
    """The grown dimension that reads channels in a weight laid out (..., out, in, ...): the second grown one,
    or the only grown one unless it is dimension 0 (outputs)."""
    grown = [d for d, (a, b) in enumerate(zip(src.shape, own.shape)) if a != b]
    if own.dim() < 2 or not grown:
        return None
    if len(grown) > 1:
        return grown[1]
    return grown[0] or None


def _copy_wider_trunk(own: torch.Tensor, src: torch.Tensor, c_old: int, c_new: int) -> None:
    places = [_old_places(a, b, c_old, c_new) for a, b in zip(src.shape, own.shape)]
    inputs = _input_dim(src, own)
    if inputs is not None:
        added = torch.ones(own.shape[inputs], dtype=torch.bool)
        added[places[inputs]] = False
        rows = [torch.arange(n) for n in own.shape]
        rows[inputs] = added.nonzero().flatten()
        for d in range(own.dim()):
            if d != inputs and own.shape[d] != src.shape[d]:
                rows[d] = places[d]
        own[torch.meshgrid(*rows, indexing="ij")] = 0
    own[torch.meshgrid(*places, indexing="ij")] = src


def _check_same_function(net: nn.Module, src: nn.Module) -> None:
    generator = torch.Generator().manual_seed(0)
    window = torch.rand(1, net.config.num_frames, net.config.in_channels, 12, 14, generator=generator)
    window = window.to(next(net.parameters()).device)
    modes = net.training, src.training
    net.eval(), src.eval()
    try:
        grown, source = net(window, scale=(2.5, 1.5)), src(window, scale=(2.5, 1.5))
    finally:
        net.train(modes[0]), src.train(modes[1])
    error = (grown - source).abs().max().item()
    if error > 1e-4:
        raise ValueError(
            f"init_grow: the grown network differs from the init weights by {error:.3g}: "
            "a tensor layout that grow_into does not know"
        )


def _copy_widened(key: str, own: torch.Tensor, src: torch.Tensor) -> None:
    """An expert mixture with a wider bottleneck: (E, d, C) compress and (E, C, d) expand."""
    if key.endswith("experts.compress") and own.shape[0::2] == src.shape[0::2]:
        own[:, : src.shape[1]].copy_(src)
    elif key.endswith("experts.expand") and own.shape[:2] == src.shape[:2]:
        own.zero_()[..., : src.shape[2]].copy_(src)
    else:
        raise ValueError(f"init_grow: {key} has shape {tuple(src.shape)} in the init weights, {tuple(own.shape)} here")


@torch.no_grad()
def grow_into(net: nn.Module, src: nn.Module) -> list[str]:
    """Copy ``src``'s weights into the larger ``net`` (see the module docs). Returns what grew: the names of the
    added RCABs and of the widened expert tensors."""
    _check_growable(src.config, net.config)
    own, theirs = net.state_dict(), src.state_dict()
    unexpected = [k for k in theirs if k not in own]
    if unexpected:
        raise ValueError(f"init_grow: init weights have keys the grown model lacks: {unexpected[:3]}")
    widened = []
    c_old, c_new = src.config.channels, net.config.channels
    for key, value in theirs.items():
        if own[key].shape == value.shape:
            own[key].copy_(value)
        elif c_new != c_old:
            _copy_wider_trunk(own[key], value, c_old, c_new)
            widened.append(key)
        else:
            _copy_widened(key, own[key], value)
            widened.append(key)
    missing = [k for k in own if k not in theirs]
    added = [name for name, m in net.named_modules() if isinstance(m, RCAB) and f"{name}.conv2.weight" in missing]
    covered = {k for name in added for k in missing if k.startswith(name + ".")}
    if set(missing) - covered:
        raise ValueError(f"init_grow: init weights lack keys outside added RCABs: {sorted(set(missing) - covered)[:3]}")
    for name in added:
        block = net.get_submodule(name)
        nn.init.zeros_(block.conv2.weight)
        nn.init.zeros_(block.conv2.bias)
    _check_same_function(net, src)
    return added + widened
