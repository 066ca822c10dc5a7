"""Still photographs as video: each sample renders 7 high-resolution frames of smooth camera motion.

The camera path (centre frame t = 0 at rest, t = -3..3):

    photo point = c + z * R(theta0 + theta_t) * (exp(k t) * q + d_t)

for a GT pixel q (GT pixels, relative to the patch centre), where z >= 2 photo pixels per GT pixel, d_t =
v t + a t^2 / 2 + shake_t is the pan (sub-pixel to several pixels per frame, with acceleration and a smoothed
random-walk shake for handheld footage), k a slow zoom and theta_t a slow roll (again with handheld shake).

Rendering: the region of the photo around the whole path is cropped, antialias-downscaled to ``oversample``
times the GT resolution (so z >= oversample means the photo is never enlarged), warped per frame with
``grid_sample`` (bicubic), then box-averaged by ``oversample`` (a sensor integrating over the pixel) and
rounded to 8 bits. The result then goes through the same asBI degradation as real video.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from training.data.frames import IMAGE_EXTS, load_image, natural_key, resize
from training.data.sources import Source

T = 7

DEFAULT_MOTION = {
    "static": 0.1,  # probability of a camera at rest (sub-pixel shake only)
    "speed": [0.1, 6.0],  # pan speed, GT px per frame, log-uniform
    "accel": 0.2,  # std of the acceleration, GT px per frame^2 (per axis)
    "handheld": 0.5,  # probability of handheld shake
    "shake": 0.5,  # max std of the shake steps, GT px
    "zoom": 0.008,  # std of the zoom rate (log scale per frame); applied with probability 0.3
    "roll": 0.2,  # std of the roll rate, degrees per frame; applied with probability 0.3
    "tilt": 3.0,  # base rotation of the whole sample, uniform in +-tilt degrees
}


def _rotation(theta: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (..., 2, 2) acting on (x, y)


def _detail(frame: torch.Tensor) -> float:
    """Mean absolute horizontal + vertical luma difference of a ``(3, h, w)`` uint8 frame, in 8-bit levels."""
    y = frame.float().mean(0)
    return float((y[:, 1:] - y[:, :-1]).abs().mean() + (y[1:] - y[:-1]).abs().mean()) / 2


class StillPhotos(Source):
    """Photographs (every image under ``root``, or a list of files), decoded once and held as uint8."""

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        name: str | None = None,
        zoom: Sequence[float] = (2.0, 3.0),
        oversample: int = 2,
        motion: dict | None = None,
        limit: int | None = None,
        flat_keep: float = 0.2,
        flat_threshold: float = 2.0,
    ):
        if isinstance(root, (str, Path)):
            root = Path(root)
            if not root.is_dir():
                raise FileNotFoundError(f"photo folder not found: {root}")
            paths = sorted([p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS], key=lambda p: natural_key(str(p)))
            self.name = name or f"stills:{root.name}"
        else:
            paths = [Path(p) for p in root]
            self.name = name or "stills"
        if limit:
            paths = paths[: int(limit)]
        if not paths:
            raise ValueError(f"{self.name}: no images")
        self.paths = paths
        self.photos = [load_image(p) for p in paths]
        self.zoom = (float(zoom[0]), float(zoom[1]))
        if self.zoom[0] < 1.0 or self.zoom[1] < self.zoom[0]:
            raise ValueError(f"stills zoom must be 1 <= min <= max, got {zoom}")
        self.oversample = int(oversample)
        #: a rendered sample whose centre frame has a mean absolute luma gradient below ``flat_threshold`` (8-bit
        #: levels) is kept only with probability ``flat_keep`` (clear sky and blur teach little)
        self.flat_keep = float(flat_keep)
        self.flat_threshold = float(flat_threshold)
        self.motion = {**DEFAULT_MOTION, **(motion or {})}
        areas = np.array([p.shape[1] * p.shape[2] for p in self.photos], dtype=np.float64)
        self.weights = areas / areas.sum()  # pick photos in proportion to their area: every pixel equally often

    def describe(self) -> str:
        mp = sum(p.shape[1] * p.shape[2] for p in self.photos) / 1e6
        return f"{self.name}: {len(self.photos)} photos, {mp:.1f} MP, zoom {self.zoom}, oversample {self.oversample}"

    def fits(self, size: tuple[int, int]) -> bool:
        h, w = size
        return any(p.shape[1] >= self.zoom[0] * h * 1.2 and p.shape[2] >= self.zoom[0] * w * 1.2 for p in self.photos)

    # ------------------------------------------------------------------------------------------
    def _path(self, rng: np.random.Generator):
        """Per-frame (scale s_t, angle theta_t, shift d_t (x, y) in GT px) for t = -3..3; identity at t = 0."""
        m = self.motion
        t = np.arange(T, dtype=np.float64) - T // 2
        if rng.random() < m["static"]:
            v = np.zeros(2)
            a = np.zeros(2)
        else:
            lo, hi = m["speed"]
            speed = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            ang = rng.uniform(0, 2 * math.pi)
            v = speed * np.array([math.cos(ang), math.sin(ang)])
            a = rng.normal(0.0, m["accel"], 2)
        d = v[None] * t[:, None] + 0.5 * a[None] * (t**2)[:, None]
        theta = np.zeros(T)
        if rng.random() < m["handheld"]:
            sigma = rng.uniform(0.0, m["shake"])
            walk = np.cumsum(rng.normal(0.0, sigma, (T, 2)), axis=0)
            d = d + walk - walk[T // 2]
            rwalk = np.cumsum(rng.normal(0.0, math.radians(0.05), T))
            theta = theta + rwalk - rwalk[T // 2]
        k = rng.normal(0.0, m["zoom"]) if rng.random() < 0.3 else 0.0
        if rng.random() < 0.3:
            theta = theta + math.radians(rng.normal(0.0, m["roll"])) * t
        return np.exp(k * t), theta, d

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> torch.Tensor | None:
        h, w = size
        os_ = self.oversample
        for attempt in range(30):
            idx = int(rng.choice(len(self.photos), p=self.weights))
            photo = self.photos[idx]
            PH, PW = photo.shape[1:]
            z = rng.uniform(*self.zoom)
            s, theta, d = self._path(rng)
            if attempt >= 10:  # the path does not fit: calm it down
                d = d * 0.5 ** (attempt - 9)
            theta0 = math.radians(rng.uniform(-self.motion["tilt"], self.motion["tilt"]))
            rot = _rotation(theta + theta0)  # (T, 2, 2)
            # corners of the GT patch (x, y) relative to its centre, one pixel of slack
            cx, cy = w / 2 + 1, h / 2 + 1
            corners = np.array([[-cx, -cy], [cx, -cy], [-cx, cy], [cx, cy]], dtype=np.float64)
            pts = z * np.einsum("tij,tkj->tki", rot, s[:, None, None] * corners[None] + d[:, None, :])
            f = max(z / os_, 1.0)  # photo px per rendered px
            margin = 4 * f + 2
            lo = pts.reshape(-1, 2).min(0) - margin
            hi = pts.reshape(-1, 2).max(0) + margin
            room_x = (PW - 1) - (hi[0] - lo[0])
            room_y = (PH - 1) - (hi[1] - lo[1])
            if room_x < 0 or room_y < 0:
                continue
            c = np.array([rng.uniform(0, room_x) - lo[0], rng.uniform(0, room_y) - lo[1]])
            x0, y0 = int(math.floor(c[0] + lo[0])), int(math.floor(c[1] + lo[1]))
            x1, y1 = int(math.ceil(c[0] + hi[0])) + 1, int(math.ceil(c[1] + hi[1])) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, PW), min(y1, PH)
            out = self._render(photo[:, y0:y1, x0:x1], (x0, y0), c, z, s, rot, d, (h, w))
            if attempt < 20 and self.flat_keep < 1.0 and _detail(out[T // 2]) < self.flat_threshold:
                if rng.random() >= self.flat_keep:
                    continue
            return out
        return None

    def _render(self, region, origin, c, z, s, rot, d, size) -> torch.Tensor:
        h, w = size
        os_ = self.oversample
        Hr, Wr = region.shape[1:]
        f = z / os_
        x = region.float()[None] / 255.0
        if f > 1.0 + 1e-3:
            x = resize(x, (max(1, round(Hr / f)), max(1, round(Wr / f))))
        # per frame an affine map from rendered pixel centres q (GT units, relative to the patch centre) to the
        # normalised grid (align_corners=False) of the downscaled region: g = q @ M_t^T + b_t
        # photo p = z R_t (s_t q + d_t) + c;  region-normalised g = (p - origin + 0.5) / (Wr, Hr) * 2 - 1
        inv = np.array([2.0 / Wr, 2.0 / Hr])
        M = z * s[:, None, None] * rot * inv[None, :, None]  # (T, 2, 2)
        b = (z * np.einsum("tij,tj->ti", rot, d) + c - np.array(origin) + 0.5) * inv[None] - 1.0  # (T, 2)
        qy = (torch.arange(h * os_, dtype=torch.float32) + 0.5) / os_ - h / 2
        qx = (torch.arange(w * os_, dtype=torch.float32) + 0.5) / os_ - w / 2
        gy, gx = torch.meshgrid(qy, qx, indexing="ij")
        q = torch.stack([gx, gy], -1).reshape(1, -1, 2)  # (1, Ho*Wo, 2) as (x, y)
        grid = torch.baddbmm(
            torch.from_numpy(b).float()[:, None, :], q.expand(T, -1, -1), torch.from_numpy(M).float().transpose(1, 2)
        ).reshape(T, h * os_, w * os_, 2)
        out = F.grid_sample(x.expand(T, -1, -1, -1), grid, mode="bicubic", padding_mode="border", align_corners=False)
        if os_ > 1:
            out = F.avg_pool2d(out, os_)
        return (out * 255.0).round_().clamp_(0, 255).to(torch.uint8)
