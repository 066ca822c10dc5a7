"""Training batches: sources behind one interface, mixed at configurable weights, cut into batches.

``TrainData.batch(i)`` is a pure function of (seed, i): the scale of batch i, its sources, crops and
augmentations all come from ``np.random.default_rng([seed, i])``. Resuming at iteration i therefore sees exactly
the batches an uninterrupted run would, and DataLoader workers can build batches in any order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from training.data.sources import FrameFolders, Source, VideoFile, VimeoSeptuplets
from training.data.stills import StillPhotos
from training.scales import ScaleSchedule, gt_patch_size

REPO_ROOT = Path(__file__).resolve().parents[2]
#: evaluation-only data sets: refusing them as training sources keeps the reported scores honest
EVAL_ONLY = ("vid4", "udm10", "validation")


def resolve_path(path: str | Path, base: Path | None = None) -> Path:
    """A relative path is tried against the working directory, then ``base`` (a config's folder), then the
    repository root (so ``../shared/data/...`` in the shipped configs works from anywhere)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for root in (Path.cwd(), base, REPO_ROOT):
        if root is not None and (root / p).exists():
            return (root / p).resolve()
    return (REPO_ROOT / p).resolve()


def _check_not_eval(path: Path) -> None:
    parts = [q.lower() for q in path.resolve().parts]
    for name in EVAL_ONLY:
        if any(q == name or q.startswith(name + "_") or q.startswith(name + "-") for q in parts):
            raise ValueError(f"{path}: {name} is an evaluation set and is never used for training")


def build_sources(specs: Sequence[dict], base: Path | None = None) -> tuple[list[Source], list[float]]:
    """Sources and their weights from the ``data.sources`` list of a config."""
    sources, weights = [], []
    for i, spec in enumerate(specs):
        try:
            src, weight = _build_source(dict(spec), base)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"data.sources.{i}: {e} (set it in the config or with --set data.sources.{i}.path=...)") from None
        if src is not None:
            sources.append(src)
            weights.append(weight)
    if not sources:
        raise ValueError("data.sources: no source with a positive weight")
    return sources, weights


def _build_source(spec: dict, base: Path | None) -> tuple[Source | None, float]:
    kind = spec.pop("type")
    weight = float(spec.pop("weight", 1.0))
    if weight <= 0:
        return None, weight
    path = resolve_path(spec.pop("path"), base)
    _check_not_eval(path)
    if kind == "stills":
        src = StillPhotos(path, **spec)
    elif kind in ("frames", "folder", "folders"):
        src = FrameFolders(path, **spec)
    elif kind == "video":
        src = VideoFile(path, **spec)
    elif kind == "vimeo":
        if "list" in spec:
            spec["list_file"] = spec.pop("list")
        src = VimeoSeptuplets(path, **spec)
    else:
        raise ValueError(f"data.sources: unknown type {kind!r} (stills, frames, video, vimeo)")
    return src, weight


class TrainData:
    """Batches of ``(B, 7, 3, Hg, Wg)`` uint8 GT frames, one scale per batch; see ``training.degrade.asbi``."""

    def __init__(
        self,
        sources: Sequence[Source],
        weights: Sequence[float],
        lr_patch: int,
        batch_size: int,
        schedule: ScaleSchedule,
        seed: int = 0,
        flip: bool = True,
        rot90: bool = True,
        reverse: bool = True,
    ):
        self.sources = list(sources)
        w = np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()
        self.lr_patch = int(lr_patch)
        self.batch_size = int(batch_size)
        self.schedule = schedule
        self.seed = int(seed)
        self.flip, self.rot90, self.reverse = bool(flip), bool(rot90), bool(reverse)

    @classmethod
    def from_config(cls, data_cfg: dict, scales_cfg: dict | None, seed: int, base: Path | None = None) -> "TrainData":
        sources, weights = build_sources(data_cfg["sources"], base)
        aug = data_cfg.get("augment", {}) or {}
        return cls(
            sources, weights, data_cfg.get("lr_patch", 60), data_cfg.get("batch_size", 16),
            ScaleSchedule.from_config(scales_cfg), seed,
            flip=aug.get("flip", True), rot90=aug.get("rot90", True), reverse=aug.get("reverse", True),
        )

    def describe(self) -> str:
        return "\n".join(f"  {w:5.1%}  {s.describe()}" for s, w in zip(self.sources, self.weights))

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> torch.Tensor:
        """One augmented ``(7, 3, h, w)`` uint8 sample from a source picked by weight."""
        h, w = size
        transpose = self.rot90 and rng.random() < 0.5  # with the flips below: all 8 rotations/reflections
        need = (w, h) if transpose else (h, w)
        ok = np.array([s.fits(need) for s in self.sources])
        if not ok.any():
            raise ValueError(f"no training source is large enough for a {need[0]}x{need[1]} GT patch")
        p = self.weights * ok
        for _ in range(10):
            src = self.sources[int(rng.choice(len(self.sources), p=p / p.sum()))]
            x = src.sample(rng, need)
            if x is not None:
                break
        else:
            raise RuntimeError(f"could not draw a {need} sample")
        if transpose:
            x = x.transpose(-1, -2)
        if self.flip and rng.random() < 0.5:
            x = x.flip(-1)
        if self.flip and rng.random() < 0.5:
            x = x.flip(-2)
        if self.reverse and rng.random() < 0.5:
            x = x.flip(0)
        return x.contiguous()

    def batch(self, iteration: int) -> dict:
        rng = np.random.default_rng([self.seed, int(iteration)])
        scale = self.schedule.sample(int(iteration), rng)
        size = gt_patch_size(self.lr_patch, scale)
        gt = torch.stack([self.sample(rng, size) for _ in range(self.batch_size)])
        return {"gt": gt, "scale": torch.tensor(scale, dtype=torch.float64), "iteration": int(iteration)}


class _BatchDataset(torch.utils.data.Dataset):
    def __init__(self, data: TrainData):
        self.data = data

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, i: int) -> dict:
        return self.data.batch(i)


def batch_iterator(data: TrainData, start: int, stop: int, workers: int = 0, prefetch: int = 2):
    """Batches ``start .. stop-1`` in order; with ``workers`` > 0 they are built in DataLoader worker processes."""
    if workers <= 0:
        for i in range(start, stop):
            yield data.batch(i)
        return
    loader = torch.utils.data.DataLoader(
        _BatchDataset(data), batch_size=None, sampler=range(start, stop), num_workers=workers,
        prefetch_factor=prefetch, persistent_workers=False, pin_memory=torch.cuda.is_available(),
        worker_init_fn=_worker_init,
    )
    yield from loader


def _worker_init(_):
    torch.set_num_threads(1)
