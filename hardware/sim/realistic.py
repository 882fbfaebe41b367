"""The realistic simulated stand: what a real bright-field stand does that the ideal one does not.

* **Partially coherent Köhler illumination.** Each objective has a dry condenser of its
  own NA. The image is the Abbe sum over a disc of source points: for each tilted plane
  wave the amplitude transmission (sqrt of the Beer–Lambert intensity transmission) passes
  the shifted pupil (with the exact scalar defocus phase) and the intensities add. The
  finest period transferred is λ/(NA_obj + NA_cond), not λ/(2·NA_obj).
* **A colour camera.** RGGB Bayer mosaic, 12 significant bits in uint16, a bias offset,
  fixed-pattern noise (gain and offset per pixel), hot pixels, shot and read noise, then
  bilinear demosaicing, as a consumer-style colour camera delivers RGB.
* **Imperfect geometry.** True pixel sizes 0.5–2 % off nominal (the core keeps reporting the
  nominal ones) and a camera turned by about 90° on the 100x.

Stage repeatability and the missing position metadata live in the devices
(:mod:`hardware.sim.devices`); ``resources/sim_realistic.cfg`` switches them on.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft

from hardware.sim import slide
from hardware.sim.optics import CAMERA_PITCH_UM, DEFAULT_SIM_OPTICS, WAVELENGTHS_UM, SimOptics
from hardware.sim.render import (
    EXITING,
    FULL_WELL_E,
    MARGIN_PX,
    READ_NOISE_E,
    TILE_PX,
    WORKERS,
    SimRenderer,
    _check_roi,
    _freq_maps,
    _Layout,
    fold_to_pixels,
    margin_px,
    start_background,
)

__all__ = [
    "ACHROMAT_OPTICS",
    "BIAS_DN",
    "REALISTIC_OPTICS",
    "RealisticRenderer",
    "bayer_channel",
    "demosaic_bilinear",
    "source_points",
]

#: (true pixel size / nominal, condenser NA, rotation°) per objective of the realistic stand
_TRUTH = {"10x": (1.008, 0.25, 0.0), "40x": (0.987, 0.65, None), "100x": (1.017, 0.90, 90.6)}


def _realistic(label: str, base: SimOptics) -> SimOptics:
    scale, cond, rot = _TRUTH[label]
    return dataclasses.replace(
        base, pixel_size_um=CAMERA_PITCH_UM / base.magnification * scale, condenser_na=cond,
        true_rotation_deg=base.true_rotation_deg if rot is None else rot)


REALISTIC_OPTICS: dict[str, SimOptics] = {
    k: _realistic(k, v) for k, v in DEFAULT_SIM_OPTICS.items()}
"""Physical truth of the realistic stand (calibration must discover pixel size and rotation)."""

#: (objective NA, condenser NA) per objective of the second realistic stand
_ACHROMAT = {"10x": (0.25, 0.15), "40x": (0.75, 0.45), "100x": (1.25, 0.55)}

ACHROMAT_OPTICS: dict[str, SimOptics] = {
    k: dataclasses.replace(v, na=_ACHROMAT[k][0], condenser_na=_ACHROMAT[k][1])
    for k, v in REALISTIC_OPTICS.items()}
"""A second realistic stand that no default model trains on (the transfer check's new
stand): plan-achromat objectives (40x/0.75, 100x/1.25 oil) with the aperture diaphragm
closed to about 0.45-0.6 of the objective NA, as users set it for contrast, on the same
Bayer camera. Lower NA moves both cutoffs; the closed condenser makes the light more
coherent (edge ringing, a lower Köhler cutoff), so a model trained on the other two stands
has to learn its optics from a few pairs."""

BIAS_DN = 100.0
"""Camera offset at 12 bits (scaled with the bit depth): a dark frame reads this, not 0."""
PRNU = 0.01
"""Pixel-to-pixel gain spread (relative std)."""
DSNU_E = 3.0
"""Pixel-to-pixel offset spread (e⁻ std)."""
HOT_FRACTION = 5e-4
"""Fraction of pixels with strong dark current."""
HOT_E_PER_MS = (30.0, 600.0)
"""Range of their dark current (log-uniform)."""
SOURCE_RINGS = 2
"""Condenser disc sampled on a hexagonal lattice of spacing R/SOURCE_RINGS (19 points)."""


# --------------------------------------------------------------------------- illumination
@lru_cache(maxsize=8)
def source_points(rings: int = SOURCE_RINGS) -> np.ndarray:
    """Unit-disc source points (N, 2): a hexagonal lattice whose outer points lie on the rim,
    so the transferred cutoff is exactly (NA_obj + NA_cond)/λ."""
    pts = [(0.0, 0.0)]
    for k in range(1, rings + 1):
        r = k / rings
        for side in range(6):  # hexagon ring k: 6k points, pushed out onto the circle
            a0, a1 = math.radians(60 * side), math.radians(60 * (side + 1))
            for m in range(k):
                f = m / k
                x = (1 - f) * math.cos(a0) + f * math.cos(a1)
                y = (1 - f) * math.sin(a0) + f * math.sin(a1)
                n = math.hypot(x, y)
                pts.append((r * x / n, r * y / n))
    return np.array(pts, np.float64)


def _half_widths(lay: _Layout, radius: float) -> tuple[int, int]:
    """Frequency samples (rows, cols) from 0 to `radius` cycles/µm on the fine fft grid."""
    d = lay.pixel_um / 2
    return (math.ceil(radius * 2 * lay.nh * d) + 1, math.ceil(radius * 2 * lay.nw * d) + 1)


def _crop_radius(opt: SimOptics) -> float:
    """Largest object frequency any source point brings into the pupil (blue channel)."""
    return (opt.na + (opt.condenser_na or 0.0)) / min(WAVELENGTHS_UM)


@lru_cache(maxsize=24)
def _pupil(lay: _Layout, opt: SimOptics, dz_um: float, channel: int) -> np.ndarray:
    """Coherent pupil with the exact scalar defocus phase, centred crop (2Ky+1, 2Kx+1)."""
    lam = WAVELENGTHS_UM[channel]
    ky, kx = _half_widths(lay, opt.na / lam)
    d = lay.pixel_um / 2
    fy = np.arange(-ky, ky + 1) / (2 * lay.nh * d)
    fx = np.arange(-kx, kx + 1) / (2 * lay.nw * d)
    f2 = fy[:, None] ** 2 + fx[None, :] ** 2
    kn = opt.n_medium / lam
    inside = f2 <= (opt.na / lam) ** 2
    phase = 2 * math.pi * dz_um * (np.sqrt(np.maximum(kn * kn - f2, 0.0)) - kn)
    return np.where(inside, np.exp(1j * phase), 0.0).astype(np.complex64)


def _source_shifts(lay: _Layout, opt: SimOptics, channel: int) -> list[tuple[int, int]]:
    """Source points as whole frequency-lattice shifts (rows, cols), one per point."""
    lam = WAVELENGTHS_UM[channel]
    r = (opt.condenser_na or 0.0) / lam
    d = lay.pixel_um / 2
    dfy, dfx = 1.0 / (2 * lay.nh * d), 1.0 / (2 * lay.nw * d)
    pts = source_points() * r
    return [(round(sy / dfy), round(sx / dfx)) for sx, sy in pts]


def amplitude_spectrum(grid: slide.Grid, lay: _Layout, opt: SimOptics) -> np.ndarray:
    """fft2 of the amplitude transmission sqrt(T) per channel, kept only where a source
    point can bring it into the pupil: centred crop (3, 2Ky+1, 2Kx+1) complex64."""
    amounts = slide.stain_maps(grid)
    ky, kx = (k + 2 for k in _half_widths(lay, _crop_radius(opt)))  # + pupil/source rounding
    rows = np.arange(-ky, ky + 1) % grid.nr
    spec = np.empty((3, 2 * ky + 1, 2 * kx + 1), np.complex64)
    od = np.empty(amounts.shape[1:], np.float32)
    for c in range(3):
        np.multiply(amounts[0], slide.STAIN_OD_RGB[0, c], out=od)
        for s in range(1, amounts.shape[0]):
            od += amounts[s] * slide.STAIN_OD_RGB[s, c]
        od *= np.float32(-0.5)  # amplitude = exp(-OD/2)
        np.exp(od, out=od)
        full = fft.fft2(od, workers=WORKERS)[rows]
        spec[c, :, kx:] = full[:, : kx + 1]
        spec[c, :, :kx] = full[:, grid.nc - kx :]
    return spec


def abbe_image(spec: np.ndarray, lay: _Layout, opt: SimOptics, dz_um: float) -> np.ndarray:
    """Partially coherent, pixel-integrated intensity (3, Nh, Nw) from `amplitude_spectrum`.

    Each source point tilts the illumination, i.e. shifts the object spectrum across the
    pupil by a whole number of samples. The field behind the pupil is band-limited to
    NA/λ, so it is synthesised on a small grid just large enough for its intensity
    (bandwidth 2·NA/λ); the intensities of all points add, and the sum's spectrum goes back
    onto the fine grid for the pixel box and the sampling at pixel centres.
    """
    _, box = _freq_maps(lay, opt)
    out = np.empty((3, lay.nh, lay.nw), np.float32)
    cy, cx = (spec.shape[-2] - 1) // 2, (spec.shape[-1] - 1) // 2
    n_full = 4 * lay.nh * lay.nw
    for c in range(3):
        pupil = _pupil(lay, opt, round(dz_um, 4), c)
        ky, kx = (pupil.shape[0] - 1) // 2, (pupil.shape[1] - 1) // 2
        my, mx = fft.next_fast_len(4 * ky + 2), fft.next_fast_len(4 * kx + 2)
        shifts = _source_shifts(lay, opt, c)
        field = np.zeros((my, mx), np.complex64)
        acc = np.zeros((my, mx), np.float32)
        for sy, sx in shifts:
            block = spec[c, cy - sy - ky : cy - sy + ky + 1, cx - sx - kx : cx - sx + kx + 1]
            np.multiply(block, pupil, out=field[: 2 * ky + 1, : 2 * kx + 1])
            e = fft.ifft2(field, workers=WORKERS)
            acc += e.real**2 + e.imag**2
        acc *= np.float32((my * mx) / (n_full * len(shifts)))
        small = fft.rfft2(acc, workers=WORKERS)  # support |q| <= 2K: no wrap at (my, mx)
        big = np.zeros((2 * lay.nh, lay.nw + 1), np.complex64)
        q = 2 * ky
        big[: q + 1, : 2 * kx + 1] = small[: q + 1, : 2 * kx + 1]
        big[2 * lay.nh - q :, : 2 * kx + 1] = small[my - q :, : 2 * kx + 1]
        big *= box
        out[c] = fft.irfft2(fold_to_pixels(big, lay.nh, lay.nw), s=(lay.nh, lay.nw),
                            workers=WORKERS)
    return out


# --------------------------------------------------------------------------- colour camera
def bayer_channel(shape: tuple[int, int], y0: int = 0, x0: int = 0) -> np.ndarray:
    """Colour index (0 R, 1 G, 2 B) of each pixel of an RGGB sensor region at (y0, x0)."""
    r = (np.arange(shape[0])[:, None] + y0) % 2
    c = (np.arange(shape[1])[None, :] + x0) % 2
    return (r + c).astype(np.int8)  # RGGB: (0,0)=R, (0,1)/(1,0)=G, (1,1)=B


def _mosaic(rgb: np.ndarray, y0: int, x0: int) -> np.ndarray:
    """One value per pixel: the colour its filter passes."""
    raw = np.empty(rgb.shape[:2], np.float32)
    r0, c0 = y0 % 2, x0 % 2
    for dr in (0, 1):
        for dc in (0, 1):
            ch = ((dr + r0) % 2) + ((dc + c0) % 2)
            raw[dr::2, dc::2] = rgb[dr::2, dc::2, ch]
    return raw


def demosaic_bilinear(raw: np.ndarray, y0: int = 0, x0: int = 0) -> np.ndarray:
    """Bilinear demosaicing of an RGGB mosaic (region origin y0, x0) -> (H, W, 3) float32.

    Each missing colour is the mean of its nearest same-colour neighbours (mirrored at the
    border, which keeps the colour phase).
    """
    h, w = raw.shape
    p = np.pad(raw.astype(np.float32, copy=False), 1, mode="reflect")
    hor = (p[1:-1, :-2] + p[1:-1, 2:]) * np.float32(0.5)
    ver = (p[:-2, 1:-1] + p[2:, 1:-1]) * np.float32(0.5)
    diag = (p[:-2, :-2] + p[:-2, 2:] + p[2:, :-2] + p[2:, 2:]) * np.float32(0.25)
    cross = (hor + ver) * np.float32(0.5)
    out = np.empty((h, w, 3), np.float32)
    r, c = y0 % 2, x0 % 2  # first row/column of the R sites in this region
    rr = (slice(r, None, 2), slice(c, None, 2))  # R sites
    bb = (slice(1 - r, None, 2), slice(1 - c, None, 2))  # B sites
    g_r = (slice(r, None, 2), slice(1 - c, None, 2))  # G on R rows
    g_b = (slice(1 - r, None, 2), slice(c, None, 2))  # G on B rows
    for site, (red, green, blue) in (
        (rr, (raw, cross, diag)),
        (bb, (diag, cross, raw)),
        (g_r, (hor, raw, ver)),
        (g_b, (ver, raw, hor)),
    ):
        out[site + (0,)] = red[site]
        out[site + (1,)] = green[site]
        out[site + (2,)] = blue[site]
    return out


@lru_cache(maxsize=2)
def _demosaiced_noise(h: int, w: int) -> np.ndarray:
    """Unit white noise through the demosaicing, (h + 64, w + 64, 3): live frames take a
    window at an even offset (same colour phase), so their noise has the interpolated
    pixels' reduced variance and correlations without demosaicing every frame."""
    n = np.random.default_rng(778).standard_normal((h + 64, w + 64), dtype=np.float32)
    return demosaic_bilinear(n)


@lru_cache(maxsize=4)
def _sensor_defects(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed per-pixel gain, offset (e⁻) and dark current (e⁻/ms) of an (h, w) sensor."""
    g = np.random.default_rng(4242)
    gain = (1.0 + PRNU * g.standard_normal((h, w))).astype(np.float32)
    offset = (DSNU_E * g.standard_normal((h, w))).astype(np.float32)
    dark = np.zeros((h, w), np.float32)
    n_hot = max(1, round(HOT_FRACTION * h * w))
    idx = g.choice(h * w, n_hot, replace=False)
    lo, hi = np.log(HOT_E_PER_MS[0]), np.log(HOT_E_PER_MS[1])
    dark.flat[idx] = np.exp(g.uniform(lo, hi, n_hot))
    return gain, offset, dark


class RealisticRenderer(SimRenderer):
    """Renders the realistic stand: Abbe partially coherent optics and a Bayer colour camera.

    Uses the ideal stand's machinery (exact snaps, cached live tiles, margins that hold the
    defocus blur); only what is cached per position (the amplitude spectrum), the imaging
    step (Abbe sum) and the camera differ.
    """

    def __init__(self, optics: dict[str, SimOptics] | None = None,
                 texture_seed: int = 0) -> None:
        super().__init__(REALISTIC_OPTICS if optics is None else optics, texture_seed)
        self._raw_key: tuple[Any, ...] | None = None
        #: live: (demosaiced clean DN, demosaiced noise std DN)
        self._raw: tuple[np.ndarray, np.ndarray] | None = None
        # live tiles: the Abbe sum is too slow for the frame path, so tiles not yet imaged
        # at this focus show the (incoherent) preview and a worker images them
        self._img_wanted: list[tuple] = []
        self._img_inflight: set = set()
        self._img_worker: threading.Thread | None = None
        self._img_wake = threading.Event()
        self._deferred = False

    # ---- live tiles -----------------------------------------------------------
    def _live_transmission(self, x: float, y: float, z: float, objective: str,
                           shape: tuple[int, int]) -> np.ndarray:
        self._deferred = False
        self._img_wanted = []
        out = super()._live_transmission(x, y, z, objective, shape)
        if self._deferred:
            self._settled = False
            self._img_wake.set()
            if self._img_worker is None and not EXITING.is_set():
                self._img_worker = start_background(threading.Thread(
                    target=self._img_work, daemon=True, name="sim-abbe-tiles"), self._img_wake)
        return out

    def settle_live(self, x: float, y: float, z: float, objective: str,
                    shape: tuple[int, int], timeout_s: float = 120.0) -> bool:
        """Render live frames here until every tile is exact (benchmarks, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.render(x, y, z, objective, shape, live=True, noise=False)
            if self.live_settled:
                return True
            self.wait_live_tiles(max(0.0, deadline - time.monotonic()))
        return False

    def _snap_refocuses(self, objective: str, opt: SimOptics, x: float, y: float, z: float,
                        shape: tuple[int, int]) -> bool:
        """Only when the snap's image at this very focus is cached (an Abbe frame is slow)."""
        if opt.condenser_na is None:
            return super()._snap_refocuses(objective, opt, x, y, z, shape)
        dz = z - (slide.slide_surface_z(x, y) + opt.true_parfocal_z_um)
        skey = (objective, float(x), float(y), *shape, margin_px(opt, dz))
        return (skey, round(dz, 4)) in self._exact_img

    def _defocused_image(self, spec: np.ndarray, opt: SimOptics, dz_um: float) -> np.ndarray:
        """Far from focus (wider margin than in focus) an incoherent stand-in with the
        Köhler cutoff: OTF and defocus of NA_eff = (NA + NA_cond)/2. The Abbe sum there
        would cost 19 FFTs per channel on a grid the size of the blur; what the defocus
        leaves (low frequencies, a blur disc) is what a focus search needs."""
        if opt.condenser_na is not None:
            opt = dataclasses.replace(opt, na=(opt.na + opt.condenser_na) / 2,
                                      condenser_na=None)
        return super()._defocused_image(spec, opt, dz_um)

    def _exact_tile(self, objective: str, opt: SimOptics, ti: int, tj: int,
                    dzq: float) -> np.ndarray:
        key = (objective, ti, tj, dzq)
        if (opt.condenser_na is None or key in self._tile_img
                or margin_px(opt, dzq) > MARGIN_PX):
            return super()._exact_tile(objective, opt, ti, tj, dzq)
        self._deferred = True
        if key not in self._img_inflight:
            self._img_wanted.append((key, opt))
        return self._preview_tile(objective, opt, ti, tj, dzq)

    def _img_work(self) -> None:
        """Image the wanted tiles (nearest the view centre first) outside the lock."""
        while True:
            with self._lock:
                job = None
                if EXITING.is_set():
                    self._img_worker = None
                    return
                while self._img_wanted and job is None:
                    key, opt = self._img_wanted.pop(0)
                    if key not in self._tile_img and key not in self._img_inflight:
                        job = key, opt
                if job is None:
                    self._img_wake.clear()
                else:
                    self._img_inflight.add(job[0])
                gen = self._gen
            if job is None:
                if self._img_wake.wait(1.0):
                    continue
                with self._lock:
                    if not self._img_wanted:
                        self._img_worker = None
                        return
                continue
            (objective, ti, tj, dzq), opt = job
            m = margin_px(opt, dzq)
            try:
                with self._lock:
                    cache = self._tile_spec if m == MARGIN_PX else self._wide_spec
                    skey = (objective, ti, tj) if m == MARGIN_PX else (objective, ti, tj, m)
                    spec = cache.get(skey)
                if spec is None:
                    spec = self._exact_tile_spectrum(opt, ti, tj, m)
                lay = self._tile_layout(opt, m)
                img = self._image(spec, lay, opt, dzq, tile=True)
                tile = np.ascontiguousarray(
                    img[:, m : m + TILE_PX, m : m + TILE_PX].transpose(1, 2, 0))
            except Exception:  # noqa: BLE001 - the tile stays a preview; asked for again
                tile = None
            with self._lock:
                self._img_inflight.discard(job[0])
                if tile is not None and gen == self._gen and self.optics.get(objective) == opt:
                    cache.get_or(skey, lambda s=spec: s)
                    self._tile_img.get_or(job[0], lambda t=tile: t)

    def wait_live_tiles(self, timeout_s: float = 60.0) -> bool:
        """Block until the background worker has imaged every tile asked for (tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._img_wanted and not self._img_inflight:
                    return True
            time.sleep(0.01)
        return False

    def _object_spectrum(self, grid: slide.Grid, lay: _Layout, opt: SimOptics) -> np.ndarray:
        if opt.condenser_na is None:
            return super()._object_spectrum(grid, lay, opt)
        return amplitude_spectrum(grid, lay, opt)

    def _image(self, spec: np.ndarray, lay: _Layout, opt: SimOptics, dz_um: float,
               tile: bool = False) -> np.ndarray:
        if opt.condenser_na is None:
            return super()._image(spec, lay, opt, dz_um, tile)
        return abbe_image(spec, lay, opt, dz_um)

    def render(self, x_um: float, y_um: float, z_um: float, objective: str,
               shape: tuple[int, int] = (1024, 1024), exposure_ms: float = 10.0,
               bit_depth: int = 12, noise: bool = True, rng: np.random.Generator | None = None,
               lamp_on: bool = True, live: bool = False,
               roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """A demosaiced colour frame (H, W, 3), uint8 (bit_depth <= 8) or uint16 holding
        ``bit_depth`` significant bits; the dark level is the bias, not 0."""
        roi = _check_roi(shape, roi)
        y0, x0 = (0, 0) if roi is None else (roi[1], roi[0])
        maxdn = float(2**bit_depth - 1)
        k = maxdn / FULL_WELL_E
        bias = BIAS_DN * (maxdn / 4095.0)
        key = (objective, *self._live_anchor(x_um, y_um, objective, shape), z_um, *shape, roi,
               exposure_ms, lamp_on, bit_depth)
        with self._lock:
            if live and key == self._raw_key and self._raw is not None:
                self._note_live_frame(objective, shape, key[1:3])
                clean_rgb, std_rgb = self._raw
            else:
                e = self.render_clean(x_um, y_um, z_um, objective, shape, exposure_ms, lamp_on,
                                      live=live, roi=roi)
                gain, offset, dark = _sensor_defects(*shape)
                if roi is not None:
                    sl = (slice(y0, y0 + roi[3]), slice(x0, x0 + roi[2]))
                    gain, offset, dark = gain[sl], offset[sl], dark[sl]
                raw_e = _mosaic(e, y0, x0)
                raw_e *= gain
                raw_e += dark * np.float32(exposure_ms)
                std = np.sqrt(raw_e + np.float32(READ_NOISE_E**2)) * np.float32(k)
                clean = (raw_e + offset) * np.float32(k) + np.float32(bias)
                if live:  # demosaicing is linear: clean and noise std go through it once
                    clean_rgb = demosaic_bilinear(clean, y0, x0)
                    std_rgb = demosaic_bilinear(std, y0, x0)
                    # a frame with preview tiles is re-assembled next time (it will refine)
                    self._raw_key = key if self._settled else None
                    self._raw = (clean_rgb, std_rgb)
        if live:
            h, w = clean_rgb.shape[:2]
            if noise:
                bank = _demosaiced_noise(*shape)
                oy = 2 * int(self._rng.integers(0, 32)) + y0 % 2
                ox = 2 * int(self._rng.integers(0, 32)) + x0 % 2
                rgb = bank[oy : oy + h, ox : ox + w] * std_rgb
                rgb += clean_rgb
            else:
                rgb = clean_rgb.copy()
        else:
            if noise:
                g = rng if rng is not None else self._rng
                raw = g.standard_normal(clean.shape, dtype=np.float32)
                raw *= std
                raw += clean
            else:
                raw = clean
            np.clip(raw, 0.0, maxdn, out=raw)
            np.rint(raw, out=raw)  # the ADC: whole DN per pixel, before demosaicing
            rgb = demosaic_bilinear(raw, y0, x0)
        rgb += np.float32(0.5)
        np.clip(rgb, 0.0, maxdn + 0.49, out=rgb)
        return rgb.astype(np.uint8 if bit_depth <= 8 else np.uint16)
