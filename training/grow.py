"""Start a larger network from a trained smaller one, computing exactly the same function at step 0.

Used by ``train --init`` when the requested model is larger than the init weights (``init_grow: true`` in the
config). Two ways to grow are supported, each keeping the source's output:
- more RCABs per residual group (``rcab_per_group`` up): every added RCAB gets a zero last convolution, which
  makes it the identity (``x + CA(0) = x``);
- a wider expert bottleneck in the upsampler (``expert_ratio`` down): the added compress rows keep their random
  initialisation and the matching expand columns start at zero, so they add nothing until trained.
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
_GROWABLE = {"rcab_per_group": +1, "expert_ratio": -1}


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
    for key, value in theirs.items():
        if own[key].shape == value.shape:
            own[key].copy_(value)
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
    return added + widened
