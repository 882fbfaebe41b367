"""SimRenderer: specimen -> objective -> camera, exact for snaps and cached for live view.

Exact path (snaps): the specimen is sampled on a grid of half the camera pixel (so the 40x,
whose optical cutoff exceeds its Nyquist, is handled), Fourier-transformed once per
(objective, position) and cached; each z then costs one multiply by OTF × defocus × pixel-box
MTF, a spectral fold (= sampling at the pixel centres) and a small inverse FFT.

Live path: the same physics evaluated in 256-px tiles on a fixed, objective-rotated pixel
lattice. Tiles are cached, so a still stage costs only noise (drawn from a pre-generated
bank at a random offset) and a panning stage only the tiles that come into view. Live frames
snap the stage position to the nearest whole pixel (<= 0.5 px), everything else is exact.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft

from hardware.sim import slide
from hardware.sim.optics import DEFAULT_SIM_OPTICS, SimOptics, otf_2d

FULL_WELL_E = 18000.0
"""Photo-electrons at saturation (= full scale of the ADC at any bit depth)."""
READ_NOISE_E = 2.5
GLASS_FRACTION_AT_10MS = 0.75
"""Clear glass at the sensor centre fills this fraction of full scale at 10 ms."""
VIGNETTING = 0.12
"""Relative illumination loss at the sensor corners (smooth radial falloff)."""
MARGIN_PX = 32
TILE_PX = 256
WORKERS = 2


def photon_rate_e_per_ms() -> float:
    """Photo-electrons per ms per pixel through clear glass at the field centre."""
    return GLASS_FRACTION_AT_10MS * FULL_WELL_E / 10.0


def _even_fast(n: int) -> int:
    m = fft.next_fast_len(n, real=True)
    while m % 2:
        m = fft.next_fast_len(m + 1, real=True)
    return m


@dataclass(frozen=True)
class _Layout:
    """A padded sensor window of Nh x Nw pixels, sampled at 2x for the optics."""

    nh: int
    nw: int
    pixel_um: float

    @property
    def fine(self) -> tuple[int, int]:
        return 2 * self.nh, 2 * self.nw


@lru_cache(maxsize=8)
def _freq_maps(lay: _Layout, optics: SimOptics) -> tuple[np.ndarray, np.ndarray]:
    """Radial frequency (cycles/µm) and pixel-box MTF on the fine rfft2 grid."""
    d = lay.pixel_um / 2
    fy = fft.fftfreq(2 * lay.nh, d=d).astype(np.float32)
    fx = fft.rfftfreq(2 * lay.nw, d=d).astype(np.float32)
    fr = np.hypot(fy[:, None], fx[None, :])
    box = np.sinc(fy * lay.pixel_um)[:, None] * np.sinc(fx * lay.pixel_um)[None, :]
    return fr, box.astype(np.float32)


def object_spectrum(grid: slide.Grid, lay: _Layout, optics: SimOptics) -> np.ndarray:
    """Beer–Lambert transmission per channel -> rfft2 × pixel-box MTF, (3, 2Nh, Nw+1)."""
    amounts = slide.stain_maps(grid)
    _, box = _freq_maps(lay, optics)
    spec = np.empty((3, 2 * lay.nh, lay.nw + 1), np.complex64)
    od = np.empty(amounts.shape[1:], np.float32)
    for c in range(3):
        np.multiply(amounts[0], slide.STAIN_OD_RGB[0, c], out=od)
        for s in range(1, amounts.shape[0]):
            od += amounts[s] * slide.STAIN_OD_RGB[s, c]
        np.negative(od, out=od)
        np.exp(od, out=od)
        spec[c] = fft.rfft2(od, workers=WORKERS)
        spec[c] *= box
    return spec


def fold_to_pixels(p: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Spectrum of the fine image sampled at every 2nd point, from its (2Nh, Nw+1) rfft2."""
    fr = p[..., :nh, :] + p[..., nh:, :]
    neg = (-np.arange(nh)) % nh
    mirrored = np.conj(fr[..., neg, nw // 2 : nw + 1][..., ::-1])
    return (fr[..., : nw // 2 + 1] + mirrored) * np.float32(0.25)


def image_from_spectrum(spec: np.ndarray, lay: _Layout, optics: SimOptics,
                        dz_um: float) -> np.ndarray:
    """Pixel-integrated transmission image (3, Nh, Nw) at defocus dz_um."""
    fr, _ = _freq_maps(lay, optics)
    out = np.empty((3, lay.nh, lay.nw), np.float32)
    for c in range(3):
        prod = spec[c] * otf_2d(optics, dz_um, c, fr)
        out[c] = fft.irfft2(fold_to_pixels(prod, lay.nh, lay.nw), s=(lay.nh, lay.nw),
                            workers=WORKERS)
    return out


@lru_cache(maxsize=4)
def _vignette(h: int, w: int) -> np.ndarray:
    r = np.arange(h, dtype=np.float32)[:, None] - (h - 1) / 2
    c = np.arange(w, dtype=np.float32)[None, :] - (w - 1) / 2
    rho2 = (r * r + c * c) / ((h / 2) ** 2 + (w / 2) ** 2)
    return (1.0 - VIGNETTING * rho2).astype(np.float32)[:, :, None]


@lru_cache(maxsize=2)
def _noise_bank(n: int) -> np.ndarray:
    return np.random.default_rng(777).standard_normal(n, dtype=np.float32)


class _LRU(OrderedDict):
    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_or(self, key, make):  # noqa: ANN001, ANN201 - tiny internal helper
        if key in self:
            self.move_to_end(key)
            return self[key]
        val = make()
        self[key] = val
        while len(self) > self.maxsize:
            self.popitem(last=False)
        return val


class SimRenderer:
    """Renders camera frames of the simulated slide; thread-safe (one lock)."""

    def __init__(self, optics: dict[str, SimOptics] | None = None) -> None:
        self.optics = dict(DEFAULT_SIM_OPTICS if optics is None else optics)
        self._lock = threading.RLock()
        self._spec = _LRU(2)  # exact path: (obj, x, y, h, w) -> spectrum
        self._exact_img = _LRU(2)  # (spec key, dz) -> transmission (H, W, 3)
        self._tile_spec = _LRU(40)  # (obj, ti, tj) -> spectrum
        self._tile_img = _LRU(160)  # (obj, ti, tj, dz_q) -> (T, T, 3)
        self._live_key = None
        self._live = None  # (clean_dn, std_dn)
        self._rng = np.random.default_rng()

    # ------------------------------------------------------------------ public API
    def render(self, x_um: float, y_um: float, z_um: float, objective: str,
               shape: tuple[int, int] = (1024, 1024), exposure_ms: float = 10.0,
               bit_depth: int = 8, noise: bool = True, rng: np.random.Generator | None = None,
               lamp_on: bool = True, live: bool = False) -> np.ndarray:
        """A camera frame (H, W, 3) uint8 (bit_depth <= 8) or uint16.

        live=True serves the cached live path (stage snapped to whole pixels, noise from a
        pre-generated bank); live=False is the exact snap path with fresh noise.
        """
        h, w = shape
        maxdn = float(2**bit_depth - 1)
        k = maxdn / FULL_WELL_E
        dtype = np.uint8 if bit_depth <= 8 else np.uint16
        with self._lock:
            if live:
                key = (objective, *self._live_anchor(x_um, y_um, objective, shape), z_um, h, w,
                       exposure_ms, lamp_on, bit_depth)
                if key != self._live_key:
                    e = self.render_clean(x_um, y_um, z_um, objective, shape, exposure_ms,
                                          lamp_on, live=True)
                    clean_dn = e * np.float32(k)
                    std_dn = np.sqrt(e + np.float32(READ_NOISE_E**2)) * np.float32(k)
                    self._live_key, self._live = key, (clean_dn, std_dn)
                clean_dn, std_dn = self._live
                if not noise:
                    out = clean_dn.copy()
                else:
                    bank = _noise_bank(3 * h * w + 65536)
                    o = int(self._rng.integers(0, 65536))
                    out = bank[o : o + 3 * h * w].reshape(h, w, 3) * std_dn
                    out += clean_dn
            else:
                e = self.render_clean(x_um, y_um, z_um, objective, shape, exposure_ms, lamp_on)
                if noise:
                    g = rng if rng is not None else self._rng
                    out = g.standard_normal(e.shape, dtype=np.float32)
                    out *= np.sqrt(e + np.float32(READ_NOISE_E**2))
                    out += e
                    out *= np.float32(k)
                else:
                    out = e * np.float32(k)
        out += np.float32(0.5)
        np.clip(out, 0.0, maxdn + 0.49, out=out)
        return out.astype(dtype)

    def render_clean(self, x_um: float, y_um: float, z_um: float, objective: str,
                     shape: tuple[int, int] = (1024, 1024), exposure_ms: float = 10.0,
                     lamp_on: bool = True, live: bool = False) -> np.ndarray:
        """Expected photo-electrons (H, W, 3) float32, before noise and full-well clipping."""
        with self._lock:
            if live:
                t = self._live_transmission(x_um, y_um, z_um, objective, shape)
            else:
                t = self.transmission(x_um, y_um, z_um, objective, shape)
        if not lamp_on:
            return np.zeros_like(t)
        gain = _vignette(*shape) * np.float32(photon_rate_e_per_ms() * exposure_ms)
        return t * gain

    def transmission(self, x_um: float, y_um: float, z_um: float, objective: str,
                     shape: tuple[int, int] = (1024, 1024)) -> np.ndarray:
        """Exact pixel-integrated image of the slide's transmission (H, W, 3), 1 = glass."""
        opt = self.optics[objective]
        h, w = shape
        dz = z_um - (slide.slide_surface_z(x_um, y_um) + opt.true_parfocal_z_um)
        with self._lock:
            skey = (objective, float(x_um), float(y_um), h, w)
            ikey = (skey, round(dz, 4))
            if ikey in self._exact_img:
                return self._exact_img.get_or(ikey, None)
            lay, mh, mw = self._frame_layout(shape, opt)
            spec = self._spec.get_or(skey, lambda: object_spectrum(
                self._frame_grid(x_um, y_um, shape, opt, lay, mh, mw), lay, opt))
            img = image_from_spectrum(spec, lay, opt, dz)
            t = np.ascontiguousarray(img[:, mh : mh + h, mw : mw + w].transpose(1, 2, 0))
            t.flags.writeable = False  # cached and shared: callers must copy to modify
            return self._exact_img.get_or(ikey, lambda: t)

    def clear_cache(self) -> None:
        """Drop every cached spectrum and image (frees memory)."""
        with self._lock:
            for c in (self._spec, self._exact_img, self._tile_spec, self._tile_img):
                c.clear()
            self._live_key = self._live = None

    # ------------------------------------------------------------------ exact frames
    @staticmethod
    def _frame_layout(shape: tuple[int, int], opt: SimOptics) -> tuple[_Layout, int, int]:
        h, w = shape
        nh, nw = _even_fast(h + 2 * MARGIN_PX), _even_fast(w + 2 * MARGIN_PX)
        return _Layout(nh, nw, opt.pixel_size_um), (nh - h) // 2, (nw - w) // 2

    @staticmethod
    def _frame_grid(x: float, y: float, shape: tuple[int, int], opt: SimOptics,
                    lay: _Layout, mh: int, mw: int) -> slide.Grid:
        """Fine grid whose every 2nd sample is a pixel centre of the padded frame."""
        h, w = shape
        p = opt.pixel_size_um
        th = math.radians(opt.true_rotation_deg)
        cx, cy = x + opt.true_offset_xy_um[0], y + opt.true_offset_xy_um[1]
        u0, v0 = (-mw - (w - 1) / 2) * p, (-mh - (h - 1) / 2) * p
        x0 = cx + math.cos(th) * u0 - math.sin(th) * v0
        y0 = cy + math.sin(th) * u0 + math.cos(th) * v0
        nr, nc = lay.fine
        return slide.Grid(x0, y0, p / 2, nr, nc, th)

    # ------------------------------------------------------------------ live tiles
    def _live_anchor(self, x: float, y: float, objective: str,
                     shape: tuple[int, int]) -> tuple[int, int]:
        """Lattice index of the frame's top-left pixel (stage snapped to whole pixels)."""
        opt = self.optics[objective]
        th = math.radians(opt.true_rotation_deg)
        cx, cy = x + opt.true_offset_xy_um[0], y + opt.true_offset_xy_um[1]
        p = opt.pixel_size_um
        jc = (math.cos(th) * cx + math.sin(th) * cy) / p
        ic = (-math.sin(th) * cx + math.cos(th) * cy) / p
        h, w = shape
        return round(ic - (h - 1) / 2), round(jc - (w - 1) / 2)

    def _live_transmission(self, x: float, y: float, z: float, objective: str,
                           shape: tuple[int, int]) -> np.ndarray:
        opt = self.optics[objective]
        h, w = shape
        i0, j0 = self._live_anchor(x, y, objective, shape)
        out = np.empty((h, w, 3), np.float32)
        T = TILE_PX
        for ti in range(i0 // T, (i0 + h - 1) // T + 1):
            for tj in range(j0 // T, (j0 + w - 1) // T + 1):
                tile = self._tile(objective, opt, ti, tj, z)
                r0, r1 = max(i0, ti * T), min(i0 + h, (ti + 1) * T)
                c0, c1 = max(j0, tj * T), min(j0 + w, (tj + 1) * T)
                out[r0 - i0 : r1 - i0, c0 - j0 : c1 - j0] = tile[
                    r0 - ti * T : r1 - ti * T, c0 - tj * T : c1 - tj * T
                ]
        return out

    def _tile(self, objective: str, opt: SimOptics, ti: int, tj: int, z: float) -> np.ndarray:
        T, M = TILE_PX, MARGIN_PX
        p = opt.pixel_size_um
        th = math.radians(opt.true_rotation_deg)
        c, s = math.cos(th), math.sin(th)
        # tile centre on the slide -> its own focus (the slide is tilted)
        uc, vc = (tj * T + T / 2) * p, (ti * T + T / 2) * p
        sx = c * uc - s * vc - opt.true_offset_xy_um[0]
        sy = s * uc + c * vc - opt.true_offset_xy_um[1]
        dz = z - (slide.slide_surface_z(sx, sy) + opt.true_parfocal_z_um)
        dzq = round(dz / 0.02) * 0.02
        lay = _Layout(T + 2 * M, T + 2 * M, p)

        def make_spec() -> np.ndarray:
            u0, v0 = (tj * T - M) * p, (ti * T - M) * p
            grid = slide.Grid(c * u0 - s * v0, s * u0 + c * v0, p / 2, *lay.fine, th)
            return object_spectrum(grid, lay, opt)

        def make_img() -> np.ndarray:
            spec = self._tile_spec.get_or((objective, ti, tj), make_spec)
            img = image_from_spectrum(spec, lay, opt, dzq)
            return np.ascontiguousarray(img[:, M : M + T, M : M + T].transpose(1, 2, 0))

        return self._tile_img.get_or((objective, ti, tj, round(dzq, 3)), make_img)
