"""Image-quality measures in torch (training losses and validation figures share one code)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .normalise import divisor_for, to_unit


def _gauss_window(channels: int, size: int = 11, sigma: float = 1.5,
                  device: torch.device | None = None) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004, 11x11 Gaussian, valid region) of (N,C,H,W) batches."""
    c = x.shape[1]
    w = _gauss_window(c, device=x.device).to(x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = F.conv2d(x, w, groups=c), F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mx * mx
    syy = F.conv2d(y * y, w, groups=c) - my * my
    sxy = F.conv2d(x * y, w, groups=c) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB of two images in [0, data_range]."""
    mse = float(F.mse_loss(x.float(), y.float()))
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def gradient_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between finite differences: why: rewards sharp edges more than pixel L1 alone."""
    dx = (x[..., :, 1:] - x[..., :, :-1]) - (y[..., :, 1:] - y[..., :, :-1])
    dy = (x[..., 1:, :] - x[..., :-1, :]) - (y[..., 1:, :] - y[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def fft_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between the amplitude spectra (orthonormal 2-D FFT per channel). Why: a pixel
    loss on noisy targets is minimised by damping the fine periods a network is unsure
    of (it flattens the bar target); this term charges each missing frequency by its
    amplitude, whatever the phase error."""
    fx = torch.fft.rfft2(x.float(), norm="ortho").abs()
    fy = torch.fft.rfft2(y.float(), norm="ortho").abs()
    return (fx - fy).abs().mean()


def to_tensor01(img: np.ndarray, divisor: float | None = None) -> torch.Tensor:
    """(H,W[,C]) array -> (1,C,H,W) float32 in [0,1] (ints by their range, floats as-is)."""
    a = np.asarray(img)
    if divisor is None:
        divisor = divisor_for(a.dtype)
    t = torch.from_numpy(to_unit(a, divisor))
    if t.ndim == 2:
        t = t[None]
    else:
        t = t.permute(2, 0, 1)
    return t[None].contiguous()


def image_psnr_ssim(pred: np.ndarray, ref: np.ndarray, border: int = 0) -> tuple[float, float]:
    """PSNR/SSIM of two same-dtype images (numpy convenience for tests and reports)."""
    a, b = to_tensor01(pred), to_tensor01(ref)
    if border:
        a = a[..., border:-border, border:-border]
        b = b[..., border:-border, border:-border]
    return psnr(a, b), float(ssim(a, b))
