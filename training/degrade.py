"""asBI: the one degradation, used for training batches and for evaluation inputs.

The reference recipe ("asBI"): a ground-truth (GT) patch of round(P*sy) x round(P*sx) pixels is cut from
all 7 frames and each frame is downsampled to P x P with bicubic interpolation *with antialiasing*
(``training.data.frames.resize``). The target is the centre GT frame.

Also here: the evaluation sizes (GT cropped so that its size is a multiple of the scale). The training scales,
their curriculum and the scale notation are in ``training.scales``.
"""

from __future__ import annotations

import math

import torch

from training.data.frames import resize
from training.scales import Scale


def bicubic_resize(frames: torch.Tensor, size: tuple[int, int], quantize: bool = False) -> torch.Tensor:
    """Antialiased bicubic resize of ``(..., C, H, W)`` float frames in [0, 1] to ``size`` = (h, w).

    Any number of leading dimensions (e.g. B x T). The result is clamped to [0, 1]; with ``quantize``
    it is also rounded to 8-bit levels (what a video file would hold).

    PyTorch's antialiased bicubic uses the a = -0.5 (Catmull-Rom, PIL / MATLAB imresize) kernel, also when
    enlarging, so the same call is the evaluation's bicubic baseline (the plain, non-antialiased
    ``F.interpolate`` bicubic uses a = -0.75 and scores about 0.3 dB higher at x2 on Vid4).
    """
    if not frames.is_floating_point():
        raise TypeError("bicubic_resize expects float frames in [0, 1]")
    x = resize(frames, size).clamp(0.0, 1.0)
    if quantize:
        x = torch.round(x * 255.0) / 255.0
    return x


def asbi(gt_frames: torch.Tensor, lr_size: tuple[int, int], quantize: bool = False) -> torch.Tensor:
    """The asBI degradation: GT frames ``(B, T, 3, H, W)`` (or ``(T, 3, H, W)``) -> LR frames of ``lr_size``.

    Training cuts GT patches of ``gt_patch_size(P, scale)`` and calls ``asbi(gt, (P, P))``; evaluation
    crops GT with ``eval_sizes`` and calls ``asbi(gt, (h, w))``. uint8 input is accepted (scaled to [0, 1]).
    """
    if gt_frames.dtype == torch.uint8:
        gt_frames = gt_frames.float() / 255.0
    return bicubic_resize(gt_frames, lr_size, quantize=quantize)


def eval_sizes(height: int, width: int, scale: Scale) -> tuple[int, int, int, int]:
    """Evaluation sizes for a GT frame of ``height`` x ``width`` at ``scale`` = (sy, sx).

    Returns (h, w, H, W): the LR size h = floor(height / sy) and the cropped GT size H = floor(h * sy)
    (likewise for the width), i.e. the GT is cropped (top-left) to a multiple of the scale, and the output
    size is the reference's floor(h * s). For integer scales this is the usual ``H - H % s``.
    """
    sy, sx = scale
    h = int(math.floor(height / sy + 1e-9))
    w = int(math.floor(width / sx + 1e-9))
    return h, w, int(math.floor(h * sy + 1e-6)), int(math.floor(w * sx + 1e-6))
