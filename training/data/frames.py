"""Reading frames, finding frame folders, and the one antialiased bicubic resize.

Everything in ``training`` that reads an image file or shrinks frames comes here: the asBI degradation
(``training.degrade``), the sequence sources (``training.data.sources``, ``training.data.video``), the still-photo
renderer (``training.data.stills``) and the evaluation (``training.evaluate``). Nothing here imports the rest of
``training``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def natural_key(s: str):
    """Sort key that orders 'f2' before 'f10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def image_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, in natural order."""
    return sorted([p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS], key=lambda p: natural_key(p.name))


def frame_folders(root: str | Path, min_frames: int = 1) -> list[tuple[str, list[Path]]]:
    """Every folder under ``root`` (``root`` included) holding at least ``min_frames`` images, as
    (name, frames): the name is the path relative to ``root`` (``root``'s own name for ``root`` itself), folders
    and frames in natural order."""
    root = Path(root)
    found = []
    for d in sorted([root, *[p for p in root.rglob("*") if p.is_dir()]], key=lambda p: natural_key(str(p))):
        frames = image_files(d)
        if len(frames) >= max(1, min_frames):
            found.append((str(d.relative_to(root)) if d != root else root.name, frames))
    return found


def load_image(path: str | Path, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """An image file as ``(3, H, W)`` uint8 RGB; ``box`` = (left, top, right, bottom) crops it first."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if box is not None:
            im = im.crop(box)
        arr = np.asarray(im)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, without decoding it."""
    with Image.open(path) as im:
        return im.height, im.width


def resize(frames: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Antialiased bicubic resize of float frames ``(..., C, H, W)`` to ``size`` = (h, w); the values keep their
    range (no clamping) and dtype. Frames already of that size come back unchanged.

    PyTorch's antialiased bicubic uses the a = -0.5 (Catmull-Rom, PIL / MATLAB imresize) kernel, also when
    enlarging. It is computed in fp32: bicubic antialiasing is not implemented for bf16/fp16 on every device."""
    if not frames.is_floating_point():
        raise TypeError("resize expects float frames")
    c, h, w = frames.shape[-3:]
    if (h, w) == tuple(size):
        return frames
    x = frames.reshape(-1, c, h, w)
    y = F.interpolate(x.float(), size=tuple(size), mode="bicubic", antialias=True, align_corners=False)
    return y.to(frames.dtype).reshape(*frames.shape[:-2], *y.shape[-2:])


def shrink(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """uint8 frames ``(N, 3, H, W)`` made ``factor`` (>= 1) times smaller with ``resize``, still uint8."""
    if factor <= 1.0:
        return frames
    h, w = frames.shape[-2:]
    size = (max(1, round(h / factor)), max(1, round(w / factor)))
    out = []
    for chunk in torch.split(frames, 16):  # bounded float memory on long clips
        out.append(resize(chunk.float(), size).round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)
