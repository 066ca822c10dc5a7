"""Shared fixtures: real frames shipped with the tests, a tiny model configuration and checkpoint, and the team's
Vid4 copy for the few tests that reproduce a published figure.

Torch runs with VSSAVSR_TEST_THREADS threads (default 1: the machine's two cores are often
shared with a background training run; scripts/test.sh sets 2).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, int(os.environ.get("VSSAVSR_TEST_THREADS", "1"))))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: real frames shipped with the tests (tests/fixtures/README.md)
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_vid4() -> Path:
    """The team's Vid4 copy (../shared/data/vid4), for the tests that reproduce a published Vid4 figure; they skip,
    saying so, where it is absent (a fresh clone): every other test runs on tests/fixtures."""
    path = SHARED_DATA / "vid4"
    if not path.is_dir():
        pytest.skip(f"reproduces a published Vid4 figure: needs the team's Vid4 copy at {path} (absent here)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's data folder (../shared/data), for the few tests that check a finding on the team's own footage
    (the real scene cut in the validation clip city_night, no false cuts on the others); they skip, saying so,
    where it is absent. Each also has a counterpart on tests/fixtures that a fresh clone runs."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"checks a finding on the team's footage: needs {SHARED_DATA} (absent here)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def load_real_frames(n: int = 7, size: tuple[int, int] | None = None, first: int = 1) -> list[np.ndarray]:
    """Frames ``first`` .. ``first + n - 1`` of the shipped real sequence (tests/fixtures/bikes, 320 x 136), as float32
    ``(3, h, w)`` arrays in [0, 1], resized to ``size`` = (h, w) with PIL's bicubic when given."""
    from PIL import Image

    out = []
    for i in range(first, first + n):
        im = Image.open(FIXTURES / "bikes" / f"{i:02d}.png").convert("RGB")
        if size is not None:
            im = im.resize((size[1], size[0]), Image.BICUBIC)
        out.append(np.asarray(im).transpose(2, 0, 1).astype(np.float32) / 255)
    return out


@pytest.fixture(scope="session")
def real_frames():
    """``load_real_frames``: real frames with texture and motion, shipped in the repository."""
    return load_real_frames


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
