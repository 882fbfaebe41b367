"""Classical baselines the models must beat: bicubic upsampling, and Richardson-Lucy
deconvolution of the bicubic image with the true 40x PSF derived from the simulator optics
(incoherent circular-pupil OTF per colour channel times the 40x pixel-box MTF)."""

from __future__ import annotations

import numpy as np

from .metrics import to_tensor01
from .models import bicubic


def psf_from_optics(na: float, channel: int, grid_um: float, lr_pixel_um: float,
                    size: int = 31) -> np.ndarray:
    """In-focus PSF sampled on a grid of `grid_um` (the HR grid), including the LR pixel
    integration: what blurs a bicubic-upsampled 40x image relative to the specimen."""
    from hardware.sim.optics import WAVELENGTHS_UM, incoherent_otf

    n = 4 * size
    f = np.fft.fftfreq(n, d=grid_um)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    fc = 2.0 * na / WAVELENGTHS_UM[channel]  # incoherent cutoff 2·NA/λ
    otf = incoherent_otf(np.hypot(fx, fy) / fc) * np.sinc(fx * lr_pixel_um) * np.sinc(
        fy * lr_pixel_um)
    psf = np.fft.fftshift(np.real(np.fft.ifft2(otf)))
    c, h = n // 2, size // 2
    psf = np.clip(psf[c - h:c + h + 1, c - h:c + h + 1], 0, None)
    return (psf / psf.sum()).astype(np.float64)


def bicubic_upsample(lr: np.ndarray, scale: float, divisor: float | None = None) -> np.ndarray:
    """Bicubic to round(H*scale) in [0,1] float32 (H, W, C); ``divisor``: the camera's
    full scale (learn.normalise), None for the dtype's."""
    t = bicubic(to_tensor01(lr, divisor), scale).clamp(0, 1)
    return t[0].permute(1, 2, 0).numpy()


def richardson_lucy_baseline(lr: np.ndarray, scale: float, lr_objective: str = "40x",
                             hr_pixel_um: float | None = None, iterations: int = 10,
                             divisor: float | None = None) -> np.ndarray:
    """Bicubic upsampling, then per-channel Richardson-Lucy with the true LR PSF; [0,1].
    ``divisor``: the camera's full scale (12-bit frames in uint16), None for the dtype's."""
    from hardware.sim.optics import DEFAULT_SIM_OPTICS

    opt = DEFAULT_SIM_OPTICS[lr_objective]
    hr_px = hr_pixel_um or opt.pixel_size_um / scale
    up = bicubic_upsample(lr, scale, divisor).astype(np.float64)
    out = np.empty_like(up)
    for ch in range(up.shape[-1]):
        psf = psf_from_optics(opt.na, min(ch, 2), hr_px, opt.pixel_size_um)
        out[..., ch] = _richardson_lucy(np.clip(up[..., ch], 1e-4, 1), psf, iterations)
    return out.astype(np.float32)


def _richardson_lucy(observed: np.ndarray, psf: np.ndarray, iterations: int) -> np.ndarray:
    """Richardson-Lucy started from the observed image (skimage starts from a flat 0.5,
    so a few iterations there blur the bars away), reflect-padded so the frame edges do
    not ring; clipped to [0, 1]."""
    from scipy.signal import fftconvolve

    pad = psf.shape[0]
    obs = np.pad(observed, pad, mode="reflect")
    est = obs.copy()
    flip = psf[::-1, ::-1]
    for _ in range(int(iterations)):
        blurred = fftconvolve(est, psf, mode="same")
        est = est * fftconvolve(obs / np.maximum(blurred, 1e-6), flip, mode="same")
        np.clip(est, 0, 1, out=est)
    return est[pad:-pad, pad:-pad]


def bar_modulation(img: np.ndarray, period_px: float, orientation: str) -> float:
    """Relative amplitude of the bar frequency: |first Fourier coefficient| / mean, from the
    profile averaged along the bars (green channel). 'v' bars vary along x."""
    g = img[..., 1] if img.ndim == 3 else img
    g = g.astype(np.float64)
    prof = g.mean(0) if orientation == "v" else g.mean(1)
    n = int(np.floor(len(prof) / period_px) * period_px)  # whole periods only
    prof = prof[:max(n, 2)]
    k = np.arange(len(prof))
    coef = np.abs(np.sum(prof * np.exp(-2j * np.pi * k / period_px))) * 2 / len(prof)
    return float(coef / max(prof.mean(), 1e-9))


__all__ = ["bar_modulation", "bicubic_upsample", "psf_from_optics",
           "richardson_lucy_baseline"]
