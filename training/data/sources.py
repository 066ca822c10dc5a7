"""Training sources behind one interface: ``source.sample(rng, (h, w))`` -> ``(7, 3, h, w)`` uint8 frames.

- ``VimeoSeptuplets``: the Vimeo-90K layout ``sequences/XXXXX/YYYY/im1..7.png`` with a list file (read lazily,
  or cached in memory with ``cache=True``).
- ``FrameFolders``: any folder tree whose leaf folders hold ordered frames (png/jpg), decoded once.
- ``VideoFile``: any video file, decoded once through VapourSynth + vapoursynth-bestsource (ffmpeg fallback).
- ``StillPhotos`` (``training.data.stills``): photographs with rendered camera motion.

Sequence sources (the first three) sample a window of 7 frames at a random temporal stride that never spans a
scene cut (``windows``), then a random crop of the requested size at the same place in all 7 frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from training.data.frames import frame_folders, image_size, load_image, shrink
from training.data.video import read_video
from training.data.windows import detect_scene_cuts, valid_windows

T = 7


class Source:
    """A source of 7-frame high-resolution samples."""

    name: str = "source"

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> torch.Tensor | None:
        """Random ``(7, 3, h, w)`` uint8 sample of ``size`` = (h, w); None if the source is too small."""
        raise NotImplementedError

    def fits(self, size: tuple[int, int]) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class SequenceSource(Source):
    """Sequences of frames (each ``(N, 3, H, W)`` uint8, or a lazy loader) and their valid 7-frame windows."""

    def __init__(
        self,
        name: str,
        sequences: Sequence,
        sizes: Sequence[tuple[int, int]],
        cuts: Sequence[Sequence[int]] | None = None,
        strides: Sequence[int] = (1,),
        labels: Sequence[str] | None = None,
    ):
        self.name = name
        self.sequences = list(sequences)
        self.sizes = [tuple(s) for s in sizes]
        self.cuts = [list(c) for c in (cuts or [[] for _ in self.sequences])]
        self.strides = tuple(int(s) for s in strides)
        self.labels = list(labels) if labels is not None else [f"{name}[{i}]" for i in range(len(self.sequences))]
        #: (sequence index, frame indices) for every valid window
        self.windows: list[tuple[int, tuple[int, ...]]] = []
        for i, seq in enumerate(self.sequences):
            n = len(seq)
            for win in valid_windows(n, self.cuts[i], T, self.strides):
                self.windows.append((i, win))
        if not self.windows:
            raise ValueError(f"{name}: no 7-frame window (sequences too short or cut too often)")

    def fits(self, size: tuple[int, int]) -> bool:
        return any(h >= size[0] and w >= size[1] for h, w in self.sizes)

    def _frames(self, seq: int, idx: Sequence[int], box: tuple[int, int, int, int]) -> torch.Tensor:
        top, left, h, w = box
        data = self.sequences[seq]
        if isinstance(data, torch.Tensor):
            return data[list(idx), :, top : top + h, left : left + w].clone()
        return torch.stack([data.load(i, (left, top, left + w, top + h)) for i in idx])

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> torch.Tensor | None:
        h, w = size
        for _ in range(20):
            seq, idx = self.windows[int(rng.integers(len(self.windows)))]
            H, W = self.sizes[seq]
            if H >= h and W >= w:
                top = int(rng.integers(H - h + 1))
                left = int(rng.integers(W - w + 1))
                return self._frames(seq, idx, (top, left, h, w))
        fitting = [k for k, (s, _) in enumerate(self.windows) if self.sizes[s][0] >= h and self.sizes[s][1] >= w]
        if not fitting:
            return None
        seq, idx = self.windows[fitting[int(rng.integers(len(fitting)))]]
        H, W = self.sizes[seq]
        return self._frames(seq, idx, (int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1)), h, w))

    def describe(self) -> str:
        frames = sum(len(s) for s in self.sequences)
        return f"{self.name}: {len(self.sequences)} sequence(s), {frames} frames, {len(self.windows)} windows, strides {list(self.strides)}"


class _LazyFrames:
    """Frame files of one sequence, decoded on demand (for data sets too big to hold in memory)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int, box=None) -> torch.Tensor:
        return load_image(self.paths[i], box)


def _load_sequence(paths: Sequence[Path], downscale: float) -> torch.Tensor:
    frames = torch.stack([load_image(p) for p in paths])
    return shrink(frames, downscale)


def _cuts_for(frames_or_none, scene_cuts, index: int = 0) -> list[int]:
    if scene_cuts in (None, False, "none"):
        return []
    if scene_cuts == "auto":
        return detect_scene_cuts(frames_or_none) if isinstance(frames_or_none, torch.Tensor) else []
    if isinstance(scene_cuts, (list, tuple)):
        if scene_cuts and isinstance(scene_cuts[0], (list, tuple)):
            return [int(c) for c in scene_cuts[index]]
        return [int(c) for c in scene_cuts]
    raise ValueError(f"scene_cuts: 'auto', 'none' or a list of frame indices, got {scene_cuts!r}")


def FrameFolders(
    root: str | Path,
    name: str | None = None,
    strides: Sequence[int] = (1,),
    scene_cuts="auto",
    downscale: float = 1.0,
    cache: bool = True,
) -> SequenceSource:
    """Every leaf folder under ``root`` holding at least 7 images is one sequence, frames in natural order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"frame folder not found: {root}")
    folders = frame_folders(root, T)
    if not folders:
        raise ValueError(f"{root}: no folder with at least {T} frames")
    seqs, sizes, cuts, labels = [], [], [], []
    for i, (label, imgs) in enumerate(folders):
        if cache:
            fr = _load_sequence(imgs, downscale)
            seqs.append(fr)
            sizes.append(tuple(fr.shape[-2:]))
            cuts.append(_cuts_for(fr, scene_cuts, i))
        else:
            if downscale > 1:
                raise ValueError("downscale needs cache: true")
            seqs.append(_LazyFrames(imgs))
            sizes.append(image_size(imgs[0]))
            cuts.append(_cuts_for(None, scene_cuts, i))
        labels.append(label)
    return SequenceSource(name or f"frames:{root.name}", seqs, sizes, cuts, strides, labels)


def VimeoSeptuplets(
    root: str | Path, list_file: str = "sep_trainlist.txt", name: str | None = None, cache: bool = False, limit: int | None = None
) -> SequenceSource:
    """The Vimeo-90K septuplet layout: ``root/sequences/XXXXX/YYYY/im1.png .. im7.png``, clips named in
    ``root/<list_file>`` (one ``XXXXX/YYYY`` per line). Each clip is one 7-frame window (no cuts inside)."""
    root = Path(root)
    lst = Path(list_file) if Path(list_file).is_absolute() else root / list_file
    if not lst.is_file():
        raise FileNotFoundError(f"Vimeo list file not found: {lst}")
    clips = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
    if limit:
        clips = clips[: int(limit)]
    seqs, sizes = [], []
    for c in clips:
        paths = [root / "sequences" / c / f"im{k}.png" for k in range(1, T + 1)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"Vimeo clip {c}: missing {missing[0]}")
        if cache:
            fr = _load_sequence(paths, 1.0)
            seqs.append(fr)
            sizes.append(tuple(fr.shape[-2:]))
        else:
            seqs.append(_LazyFrames(paths))
            sizes.append(image_size(paths[0]))
    return SequenceSource(name or f"vimeo:{root.name}", seqs, sizes, None, (1,), clips)


def VideoFile(
    path: str | Path,
    name: str | None = None,
    strides: Sequence[int] = (1,),
    scene_cuts="auto",
    downscale: float = 1.0,
    start: int = 0,
    max_frames: int | None = None,
    decoder: str = "auto",
) -> SequenceSource:
    """A video file decoded once (VapourSynth + bestsource, or ffmpeg) and held in memory as uint8.

    Scene cuts: those the source marks (``_SceneChangePrev``) plus, with ``scene_cuts="auto"``, those found by
    ``detect_scene_cuts``; or an explicit list of frame indices (after ``start``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    frames, marked = read_video(str(path), start=start, max_frames=max_frames, decoder=decoder, downscale=downscale)
    cuts = sorted(set(marked) | set(_cuts_for(frames, scene_cuts)))
    return SequenceSource(name or f"video:{path.name}", [frames], [tuple(frames.shape[-2:])], [cuts], strides, [path.name])
