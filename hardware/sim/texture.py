"""Fine periodic textures (chromatin, cytoplasmic granules) with anti-aliased mip levels.

Fine detail (down to 0.05 µm) is too costly to synthesise per pixel from lattice noise, so
it is synthesised once as a periodic tile and looked up by slide coordinate. There is a
small bank of tiles per kind, each from its own spectrum (correlation length, spectral
shape, point nonlinearity, contrast): clumpy, fine, coarse and reticular chromatin; medium,
fine and coarse granules. slide.py picks and blends them per nucleus and per region, so
fine detail is not one spectrum everywhere. A texture seed re-draws every tile's noise
(same spectra, new realisation); seed 0 is the default slide.

Each sampling spacing gets its own Gaussian-prefiltered copy, so coarse grids see a
band-limited version of the same texture rather than aliases of it. Coarse copies are
stored subsampled (a mip pyramid: texel <= spacing / 3, where the prefilter has already
removed all but < 0.1 % of the content above the new Nyquist), so the bank costs little
more memory than two full-resolution tiles did.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft

TILE_N = 1024
TEXEL_UM = 0.025
PERIOD_UM = TILE_N * TEXEL_UM  # 25.6 µm
_lock = threading.Lock()
_level_locks: dict[tuple[str, int, int], threading.Lock] = {}
_levels: dict[tuple[str, int, int], np.ndarray] = {}  # (kind, seed, d_nm) -> mip level
MAX_LEVEL_BYTES = 400 << 20
"""Bound on the cached levels: one stand warmed for every objective holds ~125 MB (7 tiles x
4 fine 4 MB spacings, the coarse ones small); a process that renders several stands or
texture seeds starts over when it passes this."""


@dataclass(frozen=True)
class Family:
    """One tile's recipe: a radial power shape (of frequency in cycles/µm), a point
    nonlinearity applied to the unit-variance Gaussian field, and the tile's contrast."""

    shape: Callable[[np.ndarray], np.ndarray]
    transfer: Callable[[np.ndarray], np.ndarray]
    contrast: float
    seed: int


def _band(fr: np.ndarray, f0: float, width: float) -> np.ndarray:
    return np.exp(-(((fr - f0) / width) ** 2))


def _lorentz(fr: np.ndarray, fc: float, fmax: float, power: float = 1.0) -> np.ndarray:
    return (1.0 + (fr / fc) ** 2) ** -power * np.exp(-((fr / fmax) ** 2))


FAMILIES: dict[str, Family] = {
    # heterochromatin clumps: long-tailed (exp) blobs of ~0.3 µm, detail to 0.07 µm
    "chromatin": Family(lambda fr: _lorentz(fr, 2.5, 14.0), lambda g: np.exp(0.9 * g),
                        0.20, 20170),
    # euchromatin: fine, near-Gaussian speckle peaking at ~0.14 µm, low contrast
    "chromatin_fine": Family(lambda fr: _band(fr, 7.0, 5.0) + 0.2 * _lorentz(fr, 1.5, 20.0),
                             lambda g: g, 0.13, 31337),
    # condensed chromatin: large dark blocks (~0.8 µm) with sharp-ish edges
    "chromatin_coarse": Family(lambda fr: _lorentz(fr, 1.0, 8.0, 1.5),
                               lambda g: np.exp(1.3 * g), 0.24, 5521),
    # reticular / fibrillar: a net of thin threads along the zero set of a band-pass field
    "chromatin_reticular": Family(lambda fr: _band(fr, 2.2, 1.2),
                                  lambda g: np.exp(-((g / 0.45) ** 2)), 0.20, 8087),
    # cytoplasmic granules: ~0.2 µm, mild (sigmoid) with a little low-frequency mottle
    "granular": Family(lambda fr: _band(fr, 5.0, 4.0) + 0.3 * _band(fr, 0.0, 1.0),
                       lambda g: 1.0 / (1.0 + np.exp(-1.5 * g)), 0.20, 4437),
    # fine granules: ~0.1 µm dust, low contrast
    "granular_fine": Family(lambda fr: _band(fr, 10.0, 5.0),
                            lambda g: 1.0 / (1.0 + np.exp(-1.2 * g)), 0.15, 9176),
    # coarse granules: sparse dense ~0.5 µm bodies (exp: a few dark, most faint)
    "granular_coarse": Family(lambda fr: _band(fr, 1.8, 1.3) + 0.15 * _band(fr, 6.0, 3.0),
                              lambda g: np.exp(1.4 * g), 0.22, 6203),
}
CHROMATIN = ("chromatin", "chromatin_fine", "chromatin_coarse", "chromatin_reticular")
GRANULAR = ("granular", "granular_fine", "granular_coarse")


def _tile_seed(kind: str, seed: int) -> int:
    return FAMILIES[kind].seed + 1_000_003 * int(seed)


def _check(kind: str) -> Family:
    try:
        return FAMILIES[kind]
    except KeyError:
        raise ValueError(f"unknown texture {kind!r}; one of {', '.join(FAMILIES)}") from None


def _raw(kind: str, seed: int = 0) -> np.ndarray:
    """Zero-prefilter tile in [0, 1] of one family and texture seed (mean 0.5)."""
    fam = _check(kind)
    rng = np.random.default_rng(_tile_seed(kind, seed))
    # white noise drawn in space (not as its spectrum, one FFT cheaper): with seed 0 the
    # 'chromatin' and 'granular' tiles are the ones the slide had before the bank
    noise = rng.standard_normal((TILE_N, TILE_N)).astype(np.float32)
    fy = fft.fftfreq(TILE_N, d=TEXEL_UM).astype(np.float32)
    fx = fft.rfftfreq(TILE_N, d=TEXEL_UM).astype(np.float32)
    spec = fft.rfft2(noise, workers=2)
    spec *= fam.shape(np.hypot(fy[:, None], fx[None, :])).astype(np.float32)
    g = fft.irfft2(spec, s=(TILE_N, TILE_N), workers=2)
    g = (g - g.mean()) / g.std()
    t = fam.transfer(g)
    t = 0.5 + fam.contrast * (t - t.mean()) / t.std()
    return np.clip(t, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=16)
def _raw_spectrum(kind: str, seed: int = 0) -> np.ndarray:
    """rfft2 of the raw tile: shared by all its mip levels (the tile itself is not kept)."""
    return fft.rfft2(_raw(kind, seed), workers=2)


def level_of(d_um: float) -> int:
    """Pyramid level for sampling spacing d_um: texel 2**L * TEXEL_UM <= d_um / 3."""
    return max(0, min(6, math.floor(math.log2(max(d_um, 1e-9) / (3 * TEXEL_UM)))))


def _mip(kind: str, seed: int, d_nm: int) -> np.ndarray:
    """Tile prefiltered with a Gaussian of sigma 0.4 * d for sampling spacing d, on the
    pyramid level of d (the band of the shared spectrum that level holds, one real
    inverse FFT: the tile is real and the filter even)."""
    d = d_nm / 1000.0
    n = TILE_N >> level_of(d)
    sigma = 0.4 * d
    gy = np.exp(-2 * (np.pi * sigma * fft.fftfreq(n, d=PERIOD_UM / n)) ** 2)
    gx = np.exp(-2 * (np.pi * sigma * fft.rfftfreq(n, d=PERIOD_UM / n)) ** 2)
    with _lock:
        spec_lock = _level_locks.setdefault((kind, seed, -1), threading.Lock())
    with spec_lock:  # computed once, whichever level asks first
        raw = _raw_spectrum(kind, seed)
    if n < TILE_N:  # keep the band |f| < n/2 per axis (its Nyquist row from the negatives)
        h = n // 2
        raw = np.concatenate([raw[:h, : h + 1], raw[TILE_N - h :, : h + 1]])
    # single precision throughout (a float64 filter made this a complex128 FFT, 5x slower)
    spec = raw * ((gy[:, None] * gx[None, :]) * (n / TILE_N) ** 2).astype(np.float32)
    return np.ascontiguousarray(fft.irfft2(spec, s=(n, n), workers=2), dtype=np.float32)


def warm(spacings_um: list[float], stop: Callable[[], bool] = lambda: False,
         seed: int = 0) -> None:
    """Compute the mip levels for these sampling spacings ahead of need (background);
    ``stop()`` is asked between levels (the interpreter is exiting)."""
    for d_um in spacings_um:
        for kind in FAMILIES:
            if stop():
                return
            tile(kind, d_um, seed)


def tile(kind: str, d_um: float, seed: int = 0) -> np.ndarray:
    """The tile prefiltered for sampling spacing d_um (thread-safe, cached); its side is
    TILE_N >> level_of(d_um).

    One lock per level: a thread needing a level waits only for that level, never for
    the background warm-up computing another (a live frame waited for it while the GUI
    was stopping live view)."""
    key = (kind, int(seed), max(1, round(d_um * 1000)))
    t = _levels.get(key)  # every nucleus asks: no lock once a level exists
    if t is not None:
        return t
    _check(kind)
    with _lock:
        level_lock = _level_locks.setdefault(key, threading.Lock())
    with level_lock:
        t = _levels.get(key)
        if t is None:
            t = _mip(*key)
            with _lock:
                if sum(a.nbytes for a in _levels.values()) + t.nbytes > MAX_LEVEL_BYTES:
                    _levels.clear()  # a bound, not an LRU: rarely reached
                _levels[key] = t
    return t


def indices(x: np.ndarray, y: np.ndarray, d_um: float,
            rotation: tuple[float, float] | None = None,
            offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Flat texel indices (int32) of coordinates (µm) on the pyramid level of d_um, shared
    by every tile looked up at these points. With ``rotation=(c, s)`` the texture is
    sampled at (c·x - s·y, s·x + c·y) + offset (one fused pass, no coordinate arrays)."""
    n = TILE_N >> level_of(d_um)
    inv = n / PERIOD_UM
    if rotation is None:
        fx = x * np.float32(inv)
        fy = y * np.float32(inv)
    else:
        c, s = rotation
        fx = x * np.float32(c * inv)
        fx -= y * np.float32(s * inv)
        fy = x * np.float32(s * inv)
        fy += y * np.float32(c * inv)
    big = 64 * n  # keeps the truncation a floor for |coordinate| < 1.6 mm
    fx += np.float32(offset[0] * inv + big)
    fy += np.float32(offset[1] * inv + big)
    ix = fx.astype(np.int32)
    iy = fy.astype(np.int32)
    ix &= n - 1
    iy &= n - 1
    iy *= n
    iy += ix
    return iy


def sample(kind: str, idx: np.ndarray, d_um: float, seed: int = 0) -> np.ndarray:
    """Texture values at `indices` computed for the same d_um."""
    return tile(kind, d_um, seed).ravel().take(idx)


def lookup(kind: str, x: np.ndarray, y: np.ndarray, d_um: float, seed: int = 0) -> np.ndarray:
    """Texture value in ~[0, 1] at coordinates (µm, any origin on the period lattice)."""
    return sample(kind, indices(x, y, d_um), d_um, seed)
