"""Decode a video file once into 8-bit RGB frames, through VapourSynth and ``vapoursynth-bestsource``.

``pip install vapoursynth-bestsource`` puts ``core.bs`` in VapourSynth's plugin folder. Without it, ``ffmpeg`` on
the PATH is used instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import torch
import vapoursynth as vs

from training.data.frames import shrink
from vssavsr.plugin.arrays import frame_array


def _matrix_for(props, height: int) -> str:
    m = int(props.get("_Matrix", 2)) if props is not None else 2
    names = {1: "709", 5: "470bg", 6: "170m", 9: "2020ncl", 10: "2020cl"}
    if m in names:
        return names[m]
    return "709" if height >= 600 else "170m"  # unspecified: HD -> BT.709, SD -> BT.601


def read_video_vs(
    path: str, start: int = 0, max_frames: int | None = None, downscale: float = 1.0
) -> tuple[torch.Tensor, list[int]]:
    """Frames ``(N, 3, H, W)`` uint8 RGB and the scene cuts the source marked (``_SceneChangePrev``).

    ``downscale`` > 1 shrinks the frames in the same resize call (bicubic b=0, c=0.5: the Catmull-Rom kernel,
    area-scaled when shrinking like an antialiased resize)."""
    core = vs.core
    if not hasattr(core, "bs"):
        raise RuntimeError("VapourSynth has no 'bs' namespace: pip install vapoursynth-bestsource")
    cache = os.environ.get("VSSAVSR_BS_CACHE") or os.path.join(tempfile.gettempdir(), "vssavsr-bsindex")
    os.makedirs(cache, exist_ok=True)
    clip = core.bs.VideoSource(source=str(path), cachemode=1, cachepath=cache)  # index in a tmp dir, not next to the data
    n_total = clip.num_frames
    end = n_total if max_frames is None else min(n_total, start + int(max_frames))
    clip = clip[start:end]
    props0 = clip.get_frame(0).props if clip.num_frames else None
    width, height = clip.width, clip.height
    if downscale > 1.0:
        width, height = max(1, round(width / downscale)), max(1, round(height / downscale))
    if clip.format.color_family != vs.RGB or clip.format.bits_per_sample != 8 or (width, height) != (clip.width, clip.height):
        kw = {"width": width, "height": height, "filter_param_a": 0.0, "filter_param_b": 0.5}
        untagged = props0 is None or "_ColorRange" not in props0
        if clip.format.color_family == vs.YUV:
            kw["matrix_in_s"] = _matrix_for(props0, clip.height)
            if untagged:
                kw["range_in_s"] = "limited"
        elif clip.format.color_family == vs.GRAY and untagged:
            kw["range_in_s"] = "full"  # as ffmpeg reads untagged gray video: R = G = B = the stored values
        clip = core.resize.Bicubic(clip, format=vs.RGB24, **kw)
    frames = np.empty((clip.num_frames, 3, clip.height, clip.width), dtype=np.uint8)
    cuts: list[int] = []
    for n, f in enumerate(clip.frames()):
        frames[n] = frame_array(f)
        if n > 0 and int(f.props.get("_SceneChangePrev", 0)):
            cuts.append(n)
    return torch.from_numpy(frames), cuts


def read_video_ffmpeg(path: str, start: int = 0, max_frames: int | None = None) -> tuple[torch.Tensor, list[int]]:
    """Fallback decoder: ``ffmpeg`` to raw RGB24 (BT.601 for untagged video, ffmpeg's default)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("no video decoder: install vapoursynth-bestsource (pip) or ffmpeg")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    w, h = (int(v) for v in probe.stdout.strip().split(",")[:2])
    vf = [f"select=gte(n\\,{start})"] if start else []
    cmd = [ffmpeg, "-v", "error", "-i", str(path)] + (["-vf", ",".join(vf), "-vsync", "0"] if vf else [])
    if max_frames is not None:
        cmd += ["-frames:v", str(int(max_frames))]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    arr = np.frombuffer(raw, dtype=np.uint8)
    n = arr.size // (h * w * 3)
    frames = arr[: n * h * w * 3].reshape(n, h, w, 3).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(frames)), []


def read_video(
    path: str, start: int = 0, max_frames: int | None = None, decoder: str = "auto", downscale: float = 1.0
) -> tuple[torch.Tensor, list[int]]:
    """Decode ``path`` once: ``(frames (N, 3, H, W) uint8, cuts marked by the source)``.

    ``decoder``: "bestsource" (VapourSynth + vapoursynth-bestsource), "ffmpeg", or "auto" (the first that works).
    ``downscale``: shrink factor (>= 1) applied while decoding.
    """
    if decoder in ("auto", "bestsource", "vs"):
        try:
            return read_video_vs(path, start, max_frames, downscale)
        except Exception:
            if decoder != "auto":
                raise
    frames, cuts = read_video_ffmpeg(path, start, max_frames)
    return shrink(frames, downscale), cuts
