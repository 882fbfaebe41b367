"""Consistency map: re-image an enhanced frame through the low-NA optics and compare.

No Qt here. Where the enhanced image, blurred by the 40x incoherent OTF and integrated
over the 40x camera pixels, disagrees with the frame that was actually measured, the
network has produced detail the measurement does not support.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: centre wavelengths (µm) of the R, G, B channels, as in the simulator and the design notes
WAVELENGTHS_UM = (0.61, 0.55, 0.47)


def incoherent_otf(shape: tuple[int, int], pixel_um: float, na: float,
                   wavelength_um: float) -> np.ndarray:
    """Circular-pupil incoherent OTF on an rfft2 grid; cutoff 2·NA/λ."""
    fy = np.fft.fftfreq(shape[0], d=pixel_um)
    fx = np.fft.rfftfreq(shape[1], d=pixel_um)
    rho = np.hypot(fy[:, None], fx[None, :]) / (2.0 * na / wavelength_um)
    rho = np.clip(rho, 0.0, 1.0)
    return ((2.0 / np.pi) * (np.arccos(rho) - rho * np.sqrt(1.0 - rho * rho))).astype(np.float32)


def _to_unit(image: np.ndarray) -> np.ndarray:
    """Float32 in 0..1 of the dtype's full scale, always (H, W, C)."""
    img = np.asarray(image)
    scale = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    out = img.astype(np.float32) / scale
    return out[..., None] if out.ndim == 2 else out


def reimage(enhanced: np.ndarray, hr_pixel_um: float, lr_pixel_um: float, na: float,
            out_shape: tuple[int, int]) -> np.ndarray:
    """Blur an HR image with the LR optics and pixel integration, then sample the LR grid."""
    hr = _to_unit(enhanced)
    h, w = hr.shape[:2]
    fy = np.fft.fftfreq(h, d=hr_pixel_um)[:, None]
    fx = np.fft.rfftfreq(w, d=hr_pixel_um)[None, :]
    pixel_mtf = (np.sinc(fy * lr_pixel_um) * np.sinc(fx * lr_pixel_um)).astype(np.float32)
    scale = lr_pixel_um / hr_pixel_um
    rows = (np.arange(out_shape[0]) + 0.5) * scale - 0.5
    cols = (np.arange(out_shape[1]) + 0.5) * scale - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    out = np.empty((out_shape[0], out_shape[1], hr.shape[2]), np.float32)
    for ch in range(hr.shape[2]):
        lam = WAVELENGTHS_UM[ch] if hr.shape[2] == 3 else WAVELENGTHS_UM[1]
        otf = incoherent_otf((h, w), hr_pixel_um, na, lam) * pixel_mtf
        blurred = np.fft.irfft2(np.fft.rfft2(hr[..., ch]) * otf, s=(h, w))
        out[..., ch] = ndimage.map_coordinates(blurred, [rr, cc], order=1, mode="nearest")
    return out


def consistency_map(measured: np.ndarray, enhanced: np.ndarray, hr_pixel_um: float,
                    lr_pixel_um: float, na: float, smooth_px: float = 1.0) -> np.ndarray:
    """|re-imaged enhanced - measured| per LR pixel, mean over channels, in full-scale units.

    A light Gaussian smoothing suppresses camera shot noise so the map shows structure,
    not noise.
    """
    lr = _to_unit(measured)
    back = reimage(enhanced, hr_pixel_um, lr_pixel_um, na, lr.shape[:2])
    diff = np.abs(back - lr).mean(axis=2)
    if smooth_px > 0:
        diff = ndimage.gaussian_filter(diff, smooth_px)
    return diff.astype(np.float32)
