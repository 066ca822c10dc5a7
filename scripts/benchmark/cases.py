"""What the benchmark measures: the cases (LR size, scale, batch, frames, tiling, network), the synthetic input,
and the weights."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vssavsr.engine.windows import window_indices
from vssavsr.model import SAVSR, load_checkpoint, save_checkpoint

from . import REPO

WINDOW = 7


@dataclass(frozen=True)
class Case:
    """One benchmark case: LR size, scale, windows per call, frames timed, optional tiling."""

    width: int
    height: int
    scale: float
    batch: int = 1
    frames: int = 8
    tile: int | None = None
    model: str | None = None

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}x{self.scale:g}"

    @property
    def lr_size(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def out_size(self) -> tuple[int, int]:
        # What savsr.Upscale(sx=scale) produces for an RGB clip (rounded), used by every mode.
        return max(1, int(math.floor(self.height * self.scale + 0.5))), max(1, int(math.floor(self.width * self.scale + 0.5)))

    @property
    def warmup(self) -> int:
        """Output frames before the timed ones (two batches; the plugin computes them all)."""
        return 2 * self.batch

    @property
    def length(self) -> int:
        """Clip length: warm-up + timed frames + the window radius after the last one."""
        return self.warmup + self.frames + WINDOW // 2


def parse_case(spec: str, defaults: dict[str, Any] | None = None) -> Case:
    """``WxHxS`` with optional ``:bBATCH``, ``:nFRAMES``, ``:tTILE``, ``:mMODEL`` suffixes."""
    parts = spec.strip().split(":")
    try:
        w, h, s = parts[0].lower().split("x")
        kw: dict[str, Any] = dict(defaults or {})
        kw.update(width=int(w), height=int(h), scale=float(s))
        for p in parts[1:]:
            key, val = p[0], p[1:]
            if key == "b":
                kw["batch"] = int(val)
            elif key == "n":
                kw["frames"] = int(val)
            elif key == "t":
                kw["tile"] = int(val) or None
            elif key == "m":
                kw["model"] = val
            else:
                raise ValueError
    except (ValueError, IndexError):
        raise SystemExit(f"benchmark: bad case {spec!r}: expected WIDTHxHEIGHTxSCALE[:bBATCH][:nFRAMES][:tTILE][:mMODEL]")
    return Case(**kw)


#: The quick CPU case: compact model, small frames, every mode (naive included) in < 2 min.
QUICK_CASE = Case(64, 64, 2.0, batch=4, frames=8, model="savsr-s")
CPU_CASES = (Case(64, 64, 2.0, batch=4, frames=16, model="savsr-s"),)
GPU_CASES = (
    Case(320, 180, 4.0, batch=8, frames=64),  # the published runtime case (232 ms/frame)
    Case(960, 540, 2.0, batch=4, frames=16),  # 1080p output
    Case(1920, 1080, 2.0, batch=1, frames=8),  # 4K output; must fit in 24 GB
)


def synth_frames(length: int, height: int, width: int, seed: int = 0):
    """(length, 3, h, w) float32 in [0, 1]: drifting multi-scale colour texture with sharp
    edges and a little grain; deterministic for a seed, detailed at any size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    waves = []
    for _ in range(6):
        f = rng.uniform(0.01, 0.25)
        ang = rng.uniform(0, np.pi)
        waves.append((f * np.cos(ang), f * np.sin(ang), rng.uniform(0, 2 * np.pi), rng.uniform(0.04, 0.1),
                      rng.uniform(0.3, 1.0, size=3).astype(np.float32)))
    vy, vx = 0.37, 0.81  # global motion, LR pixels per frame
    out = np.empty((length, 3, height, width), np.float32)
    base = rng.uniform(0.3, 0.7, size=3).astype(np.float32)
    for t in range(length):
        y = yy - vy * t
        x = xx - vx * t
        img = np.broadcast_to(base[:, None, None], (3, height, width)).copy()
        for fy, fx, ph, amp, col in waves:
            img += (amp * np.sin(2 * np.pi * (fy * y + fx * x) + ph))[None] * col[:, None, None]
        # a moving checkerboard patch (hard edges) in the middle third
        cell = max(3, min(height, width) // 12)
        chk = ((np.floor((x + 2.3 * t) / cell) + np.floor(y / cell)) % 2).astype(np.float32)
        mask = (np.abs(yy - height / 2) < height / 6) & (np.abs(xx - width / 2) < width / 6)
        img[:, mask] = (0.15 + 0.7 * chk[mask])[None] * np.array([1.0, 0.9, 0.8], np.float32)[:, None]
        img += rng.normal(0, 0.01, size=img.shape).astype(np.float32)
        out[t] = np.clip(img, 0.0, 1.0)
    return out


def window_table(length: int):
    """(length, 7) int64: the input frames of each output frame's window (reflection at the ends)."""
    return torch.tensor([window_indices(n, length, None, WINDOW) for n in range(length)], dtype=torch.int64)


def load_net_config(checkpoint: str):
    """(network configuration, metadata) of a checkpoint."""
    net, meta = load_checkpoint(checkpoint, map_location="cpu")
    return net.config, meta


def make_random_checkpoint(model, path: Path, seed: int = 0) -> Path:
    """Random weights for ``model`` (a name or a config; seeded), with non-trivial BatchNorm
    statistics so that folding BN is not a no-op."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SAVSR.from_config(model).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.4 * torch.rand(m.bias.shape, generator=g) - 0.2)
    save_checkpoint(net, str(path), metadata={"note": f"random weights (seed {seed}) for benchmarking"})
    return path


def resolve_weights(model: str, checkpoint: str | None, tmp: Path) -> tuple[str, str]:
    """(checkpoint path, description) for a model name."""
    if checkpoint:
        return checkpoint, f"checkpoint {checkpoint}"
    shipped = REPO / "vssavsr" / "weights" / f"{model}.safetensors"
    if shipped.is_file():
        return str(shipped), f"shipped {shipped.relative_to(REPO)}"
    path = tmp / f"random-{model}.safetensors"
    if not path.exists():
        make_random_checkpoint(model, path)
    return str(path), f"random weights (seed 0; {model} is not shipped), fine for timing"
