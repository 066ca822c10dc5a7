"""Training takes the authors' released weights (.pth) wherever it takes a checkpoint:
``python -m training.evaluate --checkpoint x.pth`` and ``python -m training.train --init x.pth``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from vssavsr.model import SAVSR, load_checkpoint
from vssavsr.model import official


@pytest.fixture()
def official_pth(tiny_config, tmp_path):
    torch.manual_seed(4)
    net = SAVSR(dataclasses.replace(tiny_config, layout="official")).eval()
    path = tmp_path / "tiny_official.pth"
    torch.save({"params": official.official_state_dict(net)}, path)
    return path


def test_evaluate_takes_the_official_file(official_pth, tmp_path):
    from training.evaluate import main

    rng = np.random.default_rng(0)
    seq = tmp_path / "data" / "seqA"
    seq.mkdir(parents=True)
    base = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    for k in range(1, 8):
        Image.fromarray(np.roll(base, k, axis=1)).save(seq / f"{k:02d}.png")
    res = main(["--checkpoint", str(official_pth), "--data", str(tmp_path / "data"), "--scales", "2",
                "--frames", "4", "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert set(res["mean"]) == {"Bicubic", "tiny_official"}


def test_train_init_from_the_official_file(official_pth, tmp_path):
    from training.config import apply_overrides, load_config
    from training.loop import train
    from training.state import network_from_state

    cfg = apply_overrides(load_config("cpu-smoke"), ["train.iterations=2", "data.batch_size=2"])
    res = train(cfg, tmp_path / "run", init=official_pth, progress=False)
    assert res["iteration"] == 2
    src, _ = load_checkpoint(official_pth)
    net = network_from_state(tmp_path / "run" / "last.pt", weights="raw")
    assert net.config == src.config and net.config.layout == "official"
    moved = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, src.state_dict()[k])]
    assert moved  # it trained from the official weights
