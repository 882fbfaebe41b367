"""Bright-field optics shared by the simulator and the learning code: the incoherent OTF
of a circular pupil and the in-focus PSF it implies.

Why here and not in ``hardware/sim``: ``learn/`` needs the PSF (Richardson-Lucy baseline,
live consistency map) but must not import the simulator; both import this module.
"""

from __future__ import annotations

import math

import numpy as np

WAVELENGTHS_UM = (0.61, 0.55, 0.47)
"""Effective wavelengths of the R, G, B channels."""

__all__ = ["WAVELENGTHS_UM", "incoherent_otf", "psf_from_optics"]


def incoherent_otf(nu: np.ndarray) -> np.ndarray:
    """Diffraction-limited OTF of a circular pupil; nu = f / cutoff."""
    nu = np.clip(np.abs(nu), 0.0, 1.0)
    return (2.0 / math.pi) * (np.arccos(nu) - nu * np.sqrt(1.0 - nu * nu))


def psf_from_optics(na: float, channel: int, grid_um: float, lr_pixel_um: float,
                    size: int = 31) -> np.ndarray:
    """In-focus PSF sampled on a grid of `grid_um` (the HR grid), including the LR pixel
    integration: what blurs a bicubic-upsampled LR image relative to the specimen."""
    n = 4 * size
    f = np.fft.fftfreq(n, d=grid_um)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    fc = 2.0 * na / WAVELENGTHS_UM[channel]  # incoherent cutoff 2·NA/λ
    otf = incoherent_otf(np.hypot(fx, fy) / fc) * np.sinc(fx * lr_pixel_um) * np.sinc(
        fy * lr_pixel_um)
    psf = np.fft.fftshift(np.real(np.fft.ifft2(otf)))
    c, h = n // 2, size // 2
    psf = np.clip(psf[c - h:c + h + 1, c - h:c + h + 1], 0, None)
    return np.asarray(psf / psf.sum(), dtype=np.float64)
