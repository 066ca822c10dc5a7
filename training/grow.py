"""Start a deeper network from a trained shallower one, computing exactly the same function at step 0.

Used by ``train --init`` when the requested model has more RCABs per residual group than the init weights
(``init_grow: true`` in the config): every weight of the source is copied, and each added RCAB gets a zero last
convolution, which makes it the identity (``x + CA(0) = x``). Training then starts from the source's quality
instead of from scratch, so capacity can be A/B-tested against a plain stage from the same weights.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vssavsr.model.blocks import RCAB

__all__ = ["grow_into"]

_GROWABLE = ("rcab_per_group",)


def _check_growable(small, big) -> None:
    for f in dataclasses.fields(small):
        a, b = getattr(small, f.name), getattr(big, f.name)
        if f.name in _GROWABLE:
            if b < a:
                raise ValueError(f"init_grow: {f.name} can only grow ({a} in the init weights, {b} requested)")
        elif a != b:
            raise ValueError(
                f"init_grow: the init weights differ from the requested model in {f.name} ({a} vs {b}); "
                f"only {', '.join(_GROWABLE)} may differ"
            )


@torch.no_grad()
def grow_into(net: nn.Module, src: nn.Module) -> list[str]:
    """Copy ``src``'s weights into the deeper ``net`` and make its extra RCABs identities. Returns their names."""
    _check_growable(src.config, net.config)
    missing, unexpected = net.load_state_dict(src.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"init_grow: init weights have keys the grown model lacks: {unexpected[:3]}")
    added = [name for name, m in net.named_modules() if isinstance(m, RCAB) and f"{name}.conv2.weight" in missing]
    covered = {k for name in added for k in missing if k.startswith(name + ".")}
    if set(missing) - covered:
        raise ValueError(f"init_grow: init weights lack keys outside added RCABs: {sorted(set(missing) - covered)[:3]}")
    for name in added:
        block = net.get_submodule(name)
        nn.init.zeros_(block.conv2.weight)
        nn.init.zeros_(block.conv2.bias)
    return added
