"""Image tests used by the quality gates: tissue presence and saturation.

Why separate: the engine decides accepted/rejected from plain numbers, and these numbers are
stored per pair so a later reader can re-gate without re-acquiring.
"""

from __future__ import annotations

import numpy as np


def saturated_fraction(img: np.ndarray, bit_depth: int) -> float:
    """Fraction of pixels with any channel at the camera's maximum value."""
    a = np.asarray(img)
    top = (1 << int(bit_depth)) - 1 if np.issubdtype(a.dtype, np.integer) else 1.0
    sat = np.asarray(a >= top)
    if a.ndim == 3:
        sat = np.asarray(sat.any(axis=2))
    return float(sat.mean())


def tissue_fraction(img: np.ndarray, roi_fraction: float = 0.5,
                    od_threshold: float = 0.08) -> float:
    """Fraction of the central ROI absorbing more than ``od_threshold`` (optical density)
    relative to the brightest pixels. Glass is ~0, stained tissue well above 0.1.

    The ROI is central because that is what the HR field sees and vignetting is smallest.
    """
    a = np.asarray(img, dtype=np.float64)
    g = a.mean(axis=2) if a.ndim == 3 else a
    h, w = g.shape
    rh, rw = max(8, int(h * roi_fraction)), max(8, int(w * roi_fraction))
    g = g[(h - rh) // 2:(h - rh) // 2 + rh, (w - rw) // 2:(w - rw) // 2 + rw]
    white = float(np.percentile(g, 99.5))
    if white <= 0:
        return 0.0
    od = -np.log10(np.clip(g / white, 1e-6, None))
    return float((od > od_threshold).mean())


def has_tissue(img: np.ndarray, min_fraction: float = 0.05) -> bool:
    """True when enough of the central field is stained (not empty glass)."""
    return tissue_fraction(img) >= min_fraction
