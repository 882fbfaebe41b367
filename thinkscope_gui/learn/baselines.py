"""Classical baselines the models must beat: bicubic upsampling, and Richardson-Lucy
deconvolution of the bicubic image with the LR objective's PSF from its shipped profile
(NA, pixel size; incoherent circular-pupil OTF per colour channel times the pixel-box MTF,
see hardware/optics.py). The shipped profiles carry the simulator's true NA and pixels."""

from __future__ import annotations

import numpy as np

from hardware.optics import psf_from_optics
from hardware.profiles import DEFAULT_PROFILES_PATH, load_profiles

from .metrics import to_tensor01
from .models import bicubic


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
    opt = load_profiles(DEFAULT_PROFILES_PATH)[lr_objective]
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
