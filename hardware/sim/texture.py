"""Fine periodic textures (chromatin, cytoplasmic granules) with anti-aliased mip levels.

Fine detail (down to 0.05 µm) is too costly to synthesise per pixel from lattice noise, so
it is synthesised once as a periodic tile and looked up by slide coordinate. Each sampling
spacing gets its own Gaussian-prefiltered copy, so coarse grids see a band-limited version
of the same texture rather than aliases of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy import fft

TILE_N = 1024
TEXEL_UM = 0.025
PERIOD_UM = TILE_N * TEXEL_UM  # 25.6 µm
_lock = threading.Lock()
_level_locks: dict[tuple[str, int], threading.Lock] = {}


@lru_cache(maxsize=2)
def _raw(kind: str) -> np.ndarray:
    """Zero-prefilter tile in [0, 1]; 'chromatin' is clumpy, 'granular' fine and mild."""
    rng = np.random.default_rng(20170 if kind == "chromatin" else 4437)
    noise = rng.standard_normal((TILE_N, TILE_N)).astype(np.float32)
    f = fft.fftfreq(TILE_N, d=TEXEL_UM).astype(np.float32)
    fr = np.hypot(f[:, None], f[None, :])
    if kind == "chromatin":
        shape = 1.0 / (1.0 + (fr / 2.5) ** 2) * np.exp(-((fr / 14.0) ** 2))
    else:
        shape = np.exp(-(((fr - 5.0) / 4.0) ** 2)) + 0.3 * np.exp(-((fr / 1.0) ** 2))
    g = fft.ifft2(fft.fft2(noise, workers=2) * shape, workers=2).real
    g = (g - g.mean()) / g.std()
    t = np.exp(0.9 * g) if kind == "chromatin" else 1.0 / (1.0 + np.exp(-1.5 * g))
    t = 0.5 + 0.2 * (t - t.mean()) / t.std()
    return np.clip(t, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=2)
def _raw_spectrum(kind: str) -> np.ndarray:
    """rfft2 of the raw tile: shared by all its mip levels."""
    return fft.rfft2(_raw(kind), workers=2)


# 4 MB each. About 13 are in use (2 kinds x objectives x exact/preview spacings): with 8,
# every objective change recomputed some on the camera thread
@lru_cache(maxsize=32)
def _mip(kind: str, d_nm: int) -> np.ndarray:
    """Tile prefiltered with a Gaussian of sigma 0.4 * d for sampling spacing d (the tile
    is real and the filter even: one real inverse FFT of the shared spectrum)."""
    d = d_nm / 1000.0
    sigma = 0.4 * d
    gy = np.exp(-2 * (np.pi * sigma * fft.fftfreq(TILE_N, d=TEXEL_UM)) ** 2)
    gx = np.exp(-2 * (np.pi * sigma * fft.rfftfreq(TILE_N, d=TEXEL_UM)) ** 2)
    with _lock:  # computed once, whichever level asks first
        raw = _raw_spectrum(kind)
    spec = raw * (gy[:, None] * gx[None, :])
    return np.ascontiguousarray(fft.irfft2(spec, s=(TILE_N, TILE_N), workers=2),
                                dtype=np.float32)


def warm(spacings_um: list[float], stop: Callable[[], bool] = lambda: False) -> None:
    """Compute the mip levels for these sampling spacings ahead of need (background);
    ``stop()`` is asked between levels (the interpreter is exiting)."""
    for d_um in spacings_um:
        for kind in ("chromatin", "granular"):
            if stop():
                return
            tile(kind, d_um)


def tile(kind: str, d_um: float) -> np.ndarray:
    """The tile prefiltered for sampling spacing d_um (thread-safe, cached).

    One lock per level: a thread needing a level waits only for that level, never for
    the background warm-up computing another (a live frame waited for it while the GUI
    was stopping live view)."""
    key = (kind, max(1, round(d_um * 1000)))
    with _lock:
        level_lock = _level_locks.setdefault(key, threading.Lock())
    with level_lock:
        return _mip(*key)


def lookup(kind: str, x: np.ndarray, y: np.ndarray, d_um: float) -> np.ndarray:
    """Texture value in ~[0, 1] at coordinates (µm, any origin on the period lattice)."""
    t = tile(kind, d_um)
    inv = np.float32(1.0 / TEXEL_UM)
    big = np.float32(64 * TILE_N)  # keeps the truncation a floor for |coordinate| < 1.6 mm
    ix = (x * inv + big).astype(np.int64) & (TILE_N - 1)
    iy = (y * inv + big).astype(np.int64) & (TILE_N - 1)
    return t.ravel().take(iy * TILE_N + ix)
