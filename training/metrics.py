"""PSNR and SSIM on the BT.601 luma (Y) channel, as the published protocol (MATLAB rgb2ycbcr), no border crop.

Images are 8-bit RGB (``uint8`` tensors ``(3, H, W)``, or floats in [0, 1] that are first rounded to 8-bit
levels as a saved frame would be). Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 in [16, 235]; PSNR and
SSIM use a peak of 255. SSIM: Wang et al. 2004, 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
statistics over the 'valid' part of the window (as MATLAB's ssim_index / BasicSR).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 (rounded, clamped); uint8 passes through."""
    if img.dtype == torch.uint8:
        return img
    return torch.round(img.detach().float().clamp(0, 1) * 255.0).to(torch.uint8)


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB (uint8, or float in [0, 1] rounded to 8 bits) -> float64 Y in [16, 235]."""
    x = to_uint8(img).to(torch.float64)
    r, g, b = x.unbind(-3)
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def psnr_y(sr: torch.Tensor, gt: torch.Tensor) -> float:
    """PSNR (dB) of the Y channels of two RGB frames ``(3, H, W)``."""
    if sr.shape != gt.shape:
        raise ValueError(f"psnr_y: shapes differ {tuple(sr.shape)} vs {tuple(gt.shape)}")
    mse = torch.mean((rgb_to_y(sr) - rgb_to_y(gt)) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_y(sr: torch.Tensor, gt: torch.Tensor) -> float:
    """SSIM of the Y channels of two RGB frames ``(3, H, W)``."""
    if sr.shape != gt.shape:
        raise ValueError(f"ssim_y: shapes differ {tuple(sr.shape)} vs {tuple(gt.shape)}")
    x = rgb_to_y(sr)[None, None]
    y = rgb_to_y(gt)[None, None]
    win = _gaussian_window().to(x)[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float((num / den).mean().item())
