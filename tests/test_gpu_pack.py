"""The GPU hand-off, as far as a CPU can check it (training/GPU.md).

- ``scripts/gpu/pack_data.py`` packs a tiny subset of a data folder laid out as the team's (here made of the real
  frames in tests/fixtures and the bundled sample clip); the pack holds no Vid4, stays in its size budget, and
  ``training.data`` builds every source of ``gpu-full.yaml`` from it (paths pointed at the pack).
- ``gpu-full.yaml``: the full network, bf16, eager (compile measured too slow to start), data under gpu_carry/, schedule sized to the run.
- ``scripts/gpu/train.sh assemble``: joins parts and checks their SHA-256.
- (slow) ``scripts/gpu/train.sh start / poll / finish`` on the CPU with a tiny network into a tmp folder.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACK = REPO / "scripts" / "gpu" / "pack_data.py"
DRIVER = REPO / "scripts" / "gpu" / "train.sh"
MIB = 1 << 20


def _have_video_decoder() -> bool:
    try:
        import vapoursynth as vs

        if hasattr(vs.core, "bs"):
            return True
    except Exception:
        pass
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def _team_layout(root: Path, fixtures: Path) -> Path:
    """A data folder laid out as ../shared/data (train/photos, train/ntia_aspen, clips/*.mp4), from real footage
    shipped in the repository."""
    import vssavsr

    photos, aspen, clips = root / "train" / "photos", root / "train" / "ntia_aspen", root / "clips"
    for d in (photos, aspen, clips):
        d.mkdir(parents=True)
    for p in sorted((fixtures / "stills").glob("*.png")):
        shutil.copyfile(p, photos / p.name)
    (photos / "SOURCES.md").write_text("tests/fixtures/README.md\n")
    for p in sorted((fixtures / "bikes").glob("*.png")):
        shutil.copyfile(p, aspen / p.name)
    for name in ("bigbuckbunny", "bikes"):
        shutil.copyfile(vssavsr.sample_clip_path(), clips / f"{name}.mp4")
    return root


@pytest.fixture(scope="module")
def tiny_pack(fixtures_dir, tmp_path_factory):
    """The first photo and the first 7 frames of each sequence, packed into a tmp folder."""
    src = _team_layout(tmp_path_factory.mktemp("data"), fixtures_dir)
    out = tmp_path_factory.mktemp("pack") / "gpu_carry"
    parts = "photos,aspen" + (",bigbuckbunny,bikes" if _have_video_decoder() else "")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, str(PACK), "--src", str(src), "--out", str(out), "--limit", "1", "--parts", parts,
         "--budget-mib", "4"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return out, res.stdout


def test_pack_is_small_complete_and_holds_no_vid4(tiny_pack):
    import json

    out, stdout = tiny_pack
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "vssavsr-gpu-carry" and manifest["limit"] == 1
    files = [p for p in out.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total == manifest["pack_bytes"] or abs(total - manifest["pack_bytes"]) < 4096  # manifest rewritten once
    assert total < 4 * MIB
    assert not any("vid4" in str(p.relative_to(out)).lower() for p in files)
    assert len(list((out / "photos").glob("*.jpg"))) == 1
    assert (out / "photos" / "SOURCES.md").is_file()  # licenses travel with the photos
    assert len(list((out / "aspen").glob("*.jpg"))) == 7
    for name in ("bigbuckbunny", "bikes"):
        if name in manifest["parts"]:
            shots = sorted((out / name).glob("shot*"))
            assert shots and all(len(list(s.glob("*.jpg"))) >= 7 for s in shots)
    assert "pack " in stdout and "OVER" not in stdout  # the size report (the full pack: 33 MiB of a 36 MiB budget)


def _gpu_full_with_pack(pack: Path, present: set[str]) -> dict:
    from training.config import load_config

    cfg = load_config("gpu-full")
    sources = []
    for spec in cfg["data"]["sources"]:
        rel = Path(spec["path"])
        assert rel.parts[0] == "gpu_carry", spec
        if rel.parts[1] in present:
            sources.append({**copy.deepcopy(spec), "path": str(pack / Path(*rel.parts[1:]))})
    cfg["data"]["sources"] = sources
    return cfg


def test_training_data_builds_gpu_full_sources_from_the_pack(tiny_pack):
    import torch

    from training.data import TrainData

    out, _ = tiny_pack
    present = {p.name for p in out.iterdir() if p.is_dir()}
    cfg = _gpu_full_with_pack(out, present)
    assert len(cfg["data"]["sources"]) == len(present) >= 2
    data_cfg = {**cfg["data"], "lr_patch": 16, "batch_size": 2}
    data = TrainData.from_config(data_cfg, cfg["scales"], seed=0)
    desc = data.describe()
    for name in present:
        assert name in desc
    for it in (0, 4000):  # x4 (curriculum) and a later random scale
        batch = data.batch(it)
        gt = batch["gt"]
        assert gt.dtype == torch.uint8 and gt.shape[:3] == (2, 7, 3)
        sy, sx = batch["scale"].tolist()
        assert gt.shape[-2:] == (round(16 * sy), round(16 * sx))
    for src in data.sources:  # every source yields a sample of an x2 GT patch
        import numpy as np

        x = src.sample(np.random.default_rng(1), (32, 32))
        assert x is not None and tuple(x.shape) == (7, 3, 32, 32)


def test_gpu_full_config_is_the_full_network_in_bf16():
    from training.config import load_config
    from training.state import model_config
    from vssavsr.model import SAVSRConfig

    cfg = load_config("gpu-full")
    assert model_config(cfg["model"]) == SAVSRConfig()  # the published 11.5 M-parameter network
    t = cfg["train"]
    assert t["precision"] == "bf16" and t["compile"] is False and t["device"] == "auto"
    assert cfg["optim"]["schedule"]["periods"] == [t["iterations"]]
    assert 0 < cfg["scales"]["curriculum"]["until"] < t["iterations"]
    assert 16 <= cfg["data"]["batch_size"] <= 32 and cfg["data"]["lr_patch"] >= 60
    assert t["checkpoint_every"] < t["iterations"] and t["eval_every"] == 0
    for spec in cfg["data"]["sources"]:
        assert spec["path"].startswith("gpu_carry/") and "vid4" not in spec["path"].lower()


def _bash(*args, env=None, timeout=60):
    return subprocess.run(["bash", str(DRIVER), *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_assemble_joins_parts_and_checks_sha256(tmp_path):
    blob = os.urandom(50_000)
    d1, d2 = tmp_path / "call1", tmp_path / "call2"
    d1.mkdir()
    d2.mkdir()
    parts = [blob[i : i + 20_000] for i in range(0, len(blob), 20_000)]
    for k, p in enumerate(parts):
        ((d1 if k < 2 else d2) / f"last.pt.part-{k:02d}").write_bytes(p)
    sums = f"{hashlib.sha256(blob).hexdigest()}  last.pt\n"
    (d1 / "SHA256SUMS").write_text(sums)
    (d2 / "SHA256SUMS").write_text(sums)
    (d1 / "log.csv").write_text("iteration\n1\n")
    res = _bash("assemble", d1, d2, "-o", tmp_path / "run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "sha256 OK" in res.stdout
    assert (tmp_path / "run" / "last.pt").read_bytes() == blob
    assert (tmp_path / "run" / "log.csv").is_file()
    # a missing part is caught
    res = _bash("assemble", d1, "-o", tmp_path / "run2")
    assert res.returncode == 3 and "MISMATCH" in res.stdout
    assert not (tmp_path / "run2" / "last.pt").exists()


@pytest.mark.slow
def test_gpu_train_start_poll_finish_dry_run_on_cpu(tiny_pack, tmp_path):
    """The device-side flow with a tiny network on the CPU: start (detached driver, calibration phase, resized
    second phase), poll (returns when the driver is done, final EMA in OUT), finish, state K."""
    pack, _ = tiny_pack
    gpu_run, out = tmp_path / "gpu", tmp_path / "out"
    env = {
        "GPU_RUN": str(gpu_run), "OUT": str(out), "DATA": str(pack), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
        "CAL_ITERS": "15", "CAL_MINUTES": "0.5", "WATCH_EVERY": "5",
        # the cpu-smoke network; EXTRA_SET is split on spaces, so one key per override
        "EXTRA_SET": " ".join(
            [f"model.overrides.{k}={v}" for k, v in dict(channels=8, recurrent_blocks=1, fusion_blocks=1, residual_groups=1,
                                                          rcab_per_group=1, num_kernels=2, num_experts=2,
                                                          embed_channels=16).items()]
            + ["train.iterations=1000", "data.batch_size=2", "data.lr_patch=16", "data.workers=0", "train.threads=1",
               "train.log_every=1", "train.checkpoint_every=5",
               "scales.curriculum.until=0"]),  # random scales throughout: the resized phase 2 must keep that
    }
    try:
        res = _bash("start", "0.9", "20", env=env, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "driver pid" in res.stdout and "copied to $OUT" in res.stdout
        assert (out / "log.csv").is_file() and (out / "SHA256SUMS").is_file()
        res = _bash("poll", "90", env=env, timeout=150)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "driver done: rc=0" in res.stdout, res.stdout
        plan = (gpu_run / "calibration").read_text()
        assert plan.startswith(("set ", "keep ")), plan
        if plan.startswith("set "):  # set N CYCLE UNTIL ...: no curriculum asked, none brought back
            assert plan.split()[3] == "0", plan
        fp32 = sorted(out.glob("ema-fp32.safetensors.part-*"))
        assert fp32
        res = _bash("finish", env=env, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        res = _bash("state", "0", env={**env, "OUT": str(tmp_path / "state")}, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        res = _bash("assemble", out, tmp_path / "state", "-o", tmp_path / "local")
        assert res.returncode == 0 and res.stdout.count("sha256 OK") == 2, res.stdout + res.stderr

        from vssavsr.model import load_checkpoint

        net, meta = load_checkpoint(tmp_path / "local" / "ema-fp32.safetensors")
        assert meta["training"]["config_name"] == "gpu-full" and meta["training"]["iterations"] > 0

        # a later session starts from that EMA (INIT): one phase, fresh optimizer, the weights loaded
        env2 = {**env, "GPU_RUN": str(tmp_path / "gpu2"), "OUT": str(tmp_path / "out2"), "CALIBRATE": "0",
                "INIT": str(tmp_path / "local" / "ema-fp32.safetensors")}
        res = _bash("start", "0.4", "5", env=env2, timeout=120)
        assert res.returncode == 0 and "initial weights:" in res.stdout, res.stdout + res.stderr
        res = _bash("poll", "90", env=env2, timeout=150)
        assert res.returncode == 0 and "driver done: rc=0" in res.stdout, res.stdout + res.stderr
        log = (tmp_path / "gpu2" / "train.log").read_text()
        assert "--init" in log and "initialised from" in log, log[-2000:]
    finally:
        for pid in (gpu_run / "driver.pid", tmp_path / "gpu2" / "driver.pid"):
            if pid.is_file():  # never leave a driver running
                try:
                    os.kill(int(pid.read_text()), 15)
                except (ProcessLookupError, ValueError):
                    pass
