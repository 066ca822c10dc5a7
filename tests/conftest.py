"""Shared fixtures: the team's data folder, a tiny model configuration and checkpoint.

Torch runs with VSSAVSR_TEST_THREADS threads (default 1: the machine's two cores are often
shared with a background training run; scripts/test.sh sets 2).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, int(os.environ.get("VSSAVSR_TEST_THREADS", "1"))))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (Vid4, Aspen, clips, photos); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"team data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_config():
    """A SAVSR configuration with every block present but tiny widths, for fast CPU tests."""
    from vssavsr.model import SAVSRConfig

    return SAVSRConfig(
        channels=8,
        recurrent_blocks=2,
        fusion_blocks=1,
        residual_groups=1,
        rcab_per_group=1,
        ca_reduction=4,
        num_kernels=2,
        osconv_hidden=4,
        num_experts=2,
        expert_ratio=2,
        embed_channels=8,
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_config, tmp_path_factory) -> Path:
    """Path of a random-weight checkpoint of ``tiny_config`` (seeded, so runs are repeatable)."""
    from vssavsr.model import SAVSR, save_checkpoint

    torch.manual_seed(0)
    net = SAVSR(tiny_config).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(net, path, metadata={"note": "random weights for tests"})
    return path
