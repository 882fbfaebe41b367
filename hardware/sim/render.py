"""SimRenderer: specimen -> objective -> camera, exact for snaps and cached for live view.

Exact path (snaps): the specimen is sampled on a grid of half the camera pixel (so the 40x,
whose optical cutoff exceeds its Nyquist, is handled), Fourier-transformed once per
(objective, position) and cached; each z then costs one multiply by OTF × defocus × pixel-box
MTF, a spectral fold (= sampling at the pixel centres) and a small inverse FFT.

Live path: the same physics evaluated in 256-px tiles on a fixed, objective-rotated pixel
lattice. Tiles are cached, so a still stage costs only noise (drawn from a pre-generated
bank at a random offset) and a panning stage only the tiles that come into view. Live frames
snap the stage position to the nearest whole pixel (<= 0.5 px), everything else is exact.
Tile specimen spectra are cached, so a z change only redoes the OTF multiply and a small
inverse FFT per tile (or, right after a snap at the same position, the exact frame).
While the stage moves, tiles not yet rendered are filled from a cheap preview (specimen
sampled COARSE x coarser, same optics, band-limited upsampling) and the exact tiles are
rendered by one background worker, ahead in the direction of motion; once the stage is
still, each live frame also renders at least one exact tile itself, so the live frame
converges to the exact one within a few frames (`live_settled` says when it has).
"""

from __future__ import annotations

import atexit
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft

from hardware.sim import slide, texture
from hardware.sim.optics import DEFAULT_SIM_OPTICS, SimOptics, otf_2d
from hardware.sim.slide import RenderAborted  # re-exported: raised between tiles too

FULL_WELL_E = 18000.0
"""Photo-electrons at saturation (= full scale of the ADC at any bit depth)."""
READ_NOISE_E = 2.5
GLASS_FRACTION_AT_10MS = 0.75
"""Clear glass at the sensor centre fills this fraction of full scale at 10 ms."""
VIGNETTING = 0.12
"""Relative illumination loss at the sensor corners (smooth radial falloff)."""
MARGIN_PX = 32
"""Padding around a frame or tile in focus; defocused ones get more (`margin_px`)."""
TILE_PX = 256
MAX_MARGIN_PX = 1024
"""Padding cap. Far from focus (a turret change or a safe-Z retraction seen live: 100x at
hundreds of µm) the blur disc outgrows any field; without a cap one live tile asked for a
49408² grid (36 GiB) and the process was killed for memory. Beyond the cap the blur wraps
within the padded window: the frame is still the near-uniform mean it physically is."""
WORKERS = 2
COARSE = 4
"""Preview tiles sample the specimen COARSE x coarser than exact tiles (every 2 pixels)."""
PREFETCH_LEAD_S = 0.4
"""While panning, the worker renders the tiles of the view predicted this far ahead first."""
WARM_DELAY_S = 2.0
"""The texture mip levels of all objectives are computed this long after the first live frame."""
STILL_BUDGET_S = 0.03
"""A still live frame keeps rendering missing exact tiles itself until this is spent."""


def margin_px(opt: SimOptics, dz_um: float) -> int:
    """Padding (px) that holds the defocus blur disc plus its diffraction tail, so the
    circular convolution wraps nothing into the frame: MARGIN_PX grown in steps of √2 until
    it covers it (few distinct sizes, so cached spectra are reused along a focus sweep)."""
    r_px = opt.blur_radius_um(dz_um) / opt.pixel_size_um
    # a partially coherent image sums amplitudes, whose defocus tails decay more slowly;
    # beyond the in-focus margin the realistic stand images incoherently (RealisticRenderer)
    need = 1.1 * r_px + MARGIN_PX / 4
    if opt.condenser_na is not None and 1.6 * r_px + MARGIN_PX / 4 > MARGIN_PX:
        need = max(need, MARGIN_PX + 1)
    m, half = MARGIN_PX, False
    while m < need and m < MAX_MARGIN_PX:  # 32, 48, 64, 96, 128, 192, ..., 1024
        m, half = (m * 3 // 2, True) if not half else (m * 4 // 3, False)
    return m


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


def _transmission_spectra(grid: slide.Grid) -> np.ndarray:
    """Beer–Lambert transmission per channel on `grid` -> rfft2, (3, nr, nc//2+1)."""
    amounts = slide.stain_maps(grid)
    spec = np.empty((3, grid.nr, grid.nc // 2 + 1), np.complex64)
    od = np.empty(amounts.shape[1:], np.float32)
    for c in range(3):
        np.multiply(amounts[0], slide.STAIN_OD_RGB[0, c], out=od)
        for s in range(1, amounts.shape[0]):
            od += amounts[s] * slide.STAIN_OD_RGB[s, c]
        np.negative(od, out=od)
        np.exp(od, out=od)
        spec[c] = fft.rfft2(od, workers=WORKERS)
    return spec


@lru_cache(maxsize=8)
def _pixel_maps(nh: int, nw: int, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Radial frequency and pixel-box MTF on the rfft2 grid of an nh x nw pixel sampling."""
    fy = fft.fftfreq(nh, d=pixel_um).astype(np.float32)
    fx = fft.rfftfreq(nw, d=pixel_um).astype(np.float32)
    fr = np.hypot(fy[:, None], fx[None, :])
    box = np.sinc(fy * pixel_um)[:, None] * np.sinc(fx * pixel_um)[None, :]
    return fr, box.astype(np.float32)


def defocused_spectrum(grid: slide.Grid) -> np.ndarray:
    """Transmission rfft2 × pixel box, sampled at the pixel centres (`grid.d` = pixel).

    For frames far enough from focus to need a wide margin: the defocus factor leaves < 1 %
    of the contrast above the pixel Nyquist frequency, so the half-pixel sampling (4x the
    samples) buys nothing there, and the wide margin costs less than the in-focus frame.
    """
    spec = _transmission_spectra(grid)
    spec *= _pixel_maps(grid.nr, grid.nc, grid.d)[1]
    return spec


def defocused_image(spec: np.ndarray, opt: SimOptics, dz_um: float, pixel_um: float,
                    ) -> np.ndarray:
    """Image (3, Nh, Nw) from `defocused_spectrum`: OTF × defocus, no fold needed."""
    nh, nw = spec.shape[-2], 2 * (spec.shape[-1] - 1)
    fr, _ = _pixel_maps(nh, nw, pixel_um)
    out = np.empty((3, nh, nw), np.float32)
    for c in range(3):
        out[c] = fft.irfft2(spec[c] * otf_2d(opt, dz_um, c, fr), s=(nh, nw), workers=WORKERS)
    return out


def object_spectrum(grid: slide.Grid, lay: _Layout, optics: SimOptics) -> np.ndarray:
    """Beer–Lambert transmission per channel -> rfft2 × pixel-box MTF, (3, 2Nh, Nw+1)."""
    _, box = _freq_maps(lay, optics)
    spec = _transmission_spectra(grid)
    spec *= box
    return spec


@lru_cache(maxsize=24)
def _tile_otf(lay: _Layout, optics: SimOptics, dz_um: float) -> np.ndarray:
    """OTF × defocus per channel on a (small) tile layout, (3, 2Nh, Nw+1) float32."""
    fr, _ = _freq_maps(lay, optics)
    return np.stack([otf_2d(optics, dz_um, c, fr) for c in range(3)])


@lru_cache(maxsize=4)
def _coarse_maps(nc: int, d_um: float, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Radial frequency and pixel-box MTF on the rfft2 grid of an nc x nc preview sampling."""
    fy = fft.fftfreq(nc, d=d_um).astype(np.float32)
    fx = fft.rfftfreq(nc, d=d_um).astype(np.float32)
    fr = np.hypot(fy[:, None], fx[None, :])
    box = np.sinc(fy * pixel_um)[:, None] * np.sinc(fx * pixel_um)[None, :]
    box[nc // 2, :] = 0.0  # Nyquist row/column carry no unambiguous phase: drop them
    box[:, nc // 2] = 0.0
    return fr, box.astype(np.float32)


def preview_image(spec: np.ndarray, n_px: int, d_um: float, pixel_um: float,
                  optics: SimOptics, dz_um: float) -> np.ndarray:
    """Preview tile (3, n_px, n_px) from the transmission rfft2 of an nc x nc sampling.

    The samples sit on every (n_px/nc)-th pixel centre; the blurred spectrum is zero-padded
    to the pixel grid (band-limited interpolation), so the preview is the exact image of
    the specimen low-passed at the preview's Nyquist frequency.
    """
    nc = spec.shape[-2]
    fr, box = _coarse_maps(nc, d_um, pixel_um)
    h = nc // 2
    out = np.empty((3, n_px, n_px), np.float32)
    pad = np.zeros((n_px, n_px // 2 + 1), np.complex64)
    scale = np.float32((n_px / nc) ** 2)
    for c in range(3):
        prod = spec[c] * (otf_2d(optics, dz_um, c, fr) * box * scale)
        pad[:h, : h + 1] = prod[:h, : h + 1]
        pad[n_px - h :, : h + 1] = prod[h:, : h + 1]
        out[c] = fft.irfft2(pad, s=(n_px, n_px), workers=WORKERS)
    return out


def fold_to_pixels(p: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Spectrum of the fine image sampled at every 2nd point, from its (2Nh, Nw+1) rfft2."""
    fr = p[..., :nh, :] + p[..., nh:, :]
    neg = (-np.arange(nh)) % nh
    mirrored = np.conj(fr[..., neg, nw // 2 : nw + 1][..., ::-1])
    return (fr[..., : nw // 2 + 1] + mirrored) * np.float32(0.25)


def image_from_spectrum(spec: np.ndarray, lay: _Layout, optics: SimOptics,
                        dz_um: float, otf: np.ndarray | None = None) -> np.ndarray:
    """Pixel-integrated transmission image (3, Nh, Nw) at defocus dz_um (otf: precomputed)."""
    fr, _ = _freq_maps(lay, optics)
    out = np.empty((3, lay.nh, lay.nw), np.float32)
    for c in range(3):
        prod = spec[c] * (otf[c] if otf is not None else otf_2d(optics, dz_um, c, fr))
        out[c] = fft.irfft2(fold_to_pixels(prod, lay.nh, lay.nw), s=(lay.nh, lay.nw),
                            workers=WORKERS)
    return out


def _check_roi(shape: tuple[int, int], roi: tuple[int, int, int, int] | None,
               ) -> tuple[int, int, int, int] | None:
    """Validated ``(x0, y0, w, h)`` inside an (H, W) sensor; None for none or the full frame."""
    if roi is None:
        return None
    x0, y0, w, h = (int(v) for v in roi)
    hh, ww = shape
    if x0 < 0 or y0 < 0 or w <= 0 or h <= 0 or x0 + w > ww or y0 + h > hh:
        raise ValueError(f"ROI {tuple(roi)} outside the {ww}x{hh} sensor")
    if (x0, y0, w, h) == (0, 0, ww, hh):
        return None
    return x0, y0, w, h


def _roi_centre(x_um: float, y_um: float, shape: tuple[int, int],
                roi: tuple[int, int, int, int], opt: SimOptics) -> tuple[float, float]:
    """Stage position whose (centred) frame of the ROI's size has the ROI's pixels: the
    ROI centre's pixel offset from the sensor centre, in µm, rotated like the lattice."""
    hh, ww = shape
    x0, y0, w, h = roi
    du = (x0 + (w - 1) / 2 - (ww - 1) / 2) * opt.pixel_size_um
    dv = (y0 + (h - 1) / 2 - (hh - 1) / 2) * opt.pixel_size_um
    th = math.radians(opt.true_rotation_deg)
    return (x_um + math.cos(th) * du - math.sin(th) * dv,
            y_um + math.sin(th) * du + math.cos(th) * dv)


@lru_cache(maxsize=4)
def _vignette(h: int, w: int) -> np.ndarray:
    r = np.arange(h, dtype=np.float32)[:, None] - (h - 1) / 2
    c = np.arange(w, dtype=np.float32)[None, :] - (w - 1) / 2
    rho2 = (r * r + c * c) / ((h / 2) ** 2 + (w / 2) ** 2)
    return (1.0 - VIGNETTING * rho2).astype(np.float32)[:, :, None]


#: a still live field recycles this many noisy frames (within LIVE_NOISY_BYTES): why:
#: scaling and quantising fresh noise for a 1024² RGB frame took 10-14 ms of a core
#: (0.6 of one at 50 fps) in the live bench, CPU a real camera never takes from the host;
#: served in random order, never the same twice in a row, temporal statistics hold
LIVE_NOISY_FRAMES = 8
LIVE_NOISY_BYTES = 64 * 2**20


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


#: set at interpreter exit: background renderer threads finish their FFT and end
EXITING = threading.Event()
#: running helper threads and the event that wakes each when it idles
_THREADS: dict[threading.Thread, threading.Event | None] = {}
_THREADS_LOCK = threading.Lock()


def start_background(thread: threading.Thread,
                     wake: threading.Event | None = None) -> threading.Thread:
    """Start a daemon helper thread that exit waits for (see :func:`_stop_background`); it
    must end soon after :data:`EXITING` is set, and ``wake`` is set then so an idle wait
    returns at once."""
    with _THREADS_LOCK:
        for old in [t for t in _THREADS if not t.is_alive()]:
            del _THREADS[old]
        _THREADS[thread] = wake
    thread.start()
    return thread


@atexit.register
def _stop_background() -> None:
    """Let background FFTs end before exit: scipy's FFT thread pool torn down in the middle
    of a call aborts the interpreter ("terminate called without an active exception")."""
    EXITING.set()
    with _THREADS_LOCK:
        threads = list(_THREADS.items())
    for _thread, wake in threads:
        if wake is not None:
            wake.set()
    for thread, _wake in threads:
        if thread.is_alive():
            thread.join(timeout=10)


class SimRenderer:
    """Renders camera frames of the simulated slide; thread-safe (one lock).

    ``texture_seed`` re-draws the slide's fine textures (texture.py: same spectra, new
    realisation; the nuclei, fibres and regions stay); 0 is the default slide. It is fixed
    for the renderer's life, as its caches hold the specimen it made."""

    def __init__(self, optics: dict[str, SimOptics] | None = None,
                 texture_seed: int = 0) -> None:
        self.optics = dict(DEFAULT_SIM_OPTICS if optics is None else optics)
        self._texture_seed = int(texture_seed)
        self._lock = threading.RLock()
        self._spec = _LRU(6)  # exact path: (obj, x, y, h, w, margin) -> spectrum
        self._exact_img = _LRU(2)  # (spec key, dz) -> transmission (H, W, 3)
        self._tile_spec = _LRU(56)  # (obj, ti, tj) -> spectrum
        self._wide_spec = _LRU(24)  # defocused tiles: (obj, ti, tj, margin) -> spectrum
        self._tile_img = _LRU(160)  # (obj, ti, tj, dz_q) -> (T, T, 3)
        self._prev_spec = _LRU(256)  # preview: (obj, ti, tj) -> coarse transmission spectrum
        self._prev_img = _LRU(96)  # preview: (obj, ti, tj, dz_q) -> (T, T, 3)
        self._live_key: tuple[Any, ...] | None = None
        self._live: tuple[np.ndarray, np.ndarray] | None = None  # (clean_dn, std_dn)
        #: noisy frames of the still, settled live field (LIVE_NOISY_FRAMES), served in
        #: random order once there are enough; and the index served last
        self._live_noisy: list[np.ndarray] = []
        self._live_pick = 0
        self._rng = np.random.default_rng()
        # live motion state and the background tile worker (all guarded by self._lock)
        #: (objective, shape, anchor, time) of the last live frame
        self._last: tuple[str, tuple[int, int], tuple[int, ...], float] | None = None
        self._vel = (0.0, 0.0)  # lattice px/s, smoothed
        self._settled = True
        self._wanted: list[tuple] = []  # exact tile jobs, most urgent first
        self._inflight: set = set()
        self._gen = 0  # bumped by clear_cache: stale worker results are dropped
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        #: the very first live frame comes from preview tiles (the path a moving stage
        #: takes: same optics, specimen sampled COARSE x coarser) and refines like one;
        #: off by default so a first live frame is exact (the physics tests rely on it)
        self.quick_first_frame = False
        self._textures_warm = False
        #: set while the camera's sequence is being stopped: a live frame stops between
        #: tiles (RenderAborted) instead of finishing (the stopping thread joins it)
        self.abort_live = threading.Event()

    # ------------------------------------------------------------------ public API
    def render(self, x_um: float, y_um: float, z_um: float, objective: str,
               shape: tuple[int, int] = (1024, 1024), exposure_ms: float = 10.0,
               bit_depth: int = 8, noise: bool = True, rng: np.random.Generator | None = None,
               lamp_on: bool = True, live: bool = False,
               roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """A camera frame (H, W, 3) uint8 (bit_depth <= 8) or uint16.

        live=True serves the cached live path (stage snapped to whole pixels, noise from a
        pre-generated bank); live=False is the exact snap path with fresh noise.
        ``roi=(x0, y0, w, h)`` renders only that region of the ``shape`` sensor: the result
        is ``full[y0:y0+h, x0:x0+w]`` (same specimen points, vignetting and focus), so a
        camera ROI costs in proportion to its area (autofocus).
        """
        roi = _check_roi(shape, roi)
        h, w = shape if roi is None else (roi[3], roi[2])
        maxdn = float(2**bit_depth - 1)
        k = maxdn / FULL_WELL_E
        dtype = np.uint8 if bit_depth <= 8 else np.uint16
        with self._lock:
            if live:
                key = (objective, *self._live_anchor(x_um, y_um, objective, shape), z_um,
                       *shape, roi, exposure_ms, lamp_on, bit_depth)
                if key != self._live_key:
                    clean_dn = self.render_clean(x_um, y_um, z_um, objective, shape,
                                                 exposure_ms, lamp_on, live=True, roi=roi)
                    if roi is not None:
                        clean_dn = clean_dn.copy()  # a view of the full frame: own it
                    clean_dn *= np.float32(k)  # a fresh array: scale in place
                    std_dn = clean_dn * np.float32(k)  # = e·k², so std = sqrt(e + r²)·k
                    std_dn += np.float32((READ_NOISE_E * k) ** 2)
                    np.sqrt(std_dn, out=std_dn)
                    clean_dn += np.float32(0.5)  # rounding offset, applied once per frame
                    # a frame with preview tiles is re-assembled next time (it will refine)
                    self._live_key = key if self._settled else None
                    self._live = (clean_dn, std_dn)
                    self._live_noisy = []
                else:
                    self._note_live_frame(objective, shape, key[1:3])
                assert self._live is not None  # set above, or kept from the last frame
                clean_dn, std_dn = self._live
                still = noise and key == self._live_key
                kept = self._live_noisy
                if still and kept and len(kept) >= min(LIVE_NOISY_FRAMES,
                                                       LIVE_NOISY_BYTES // kept[0].nbytes):
                    # a still, settled field: one of the kept noisy frames, never the one
                    # just served, so consecutive frames differ by independent noise
                    i = (self._live_pick + 1 + int(self._rng.integers(0, len(kept) - 1))) \
                        % len(kept)
                    self._live_pick = i
                    return kept[i].copy()
                if not noise:
                    out = clean_dn.copy()
                else:
                    bank = _noise_bank(3 * h * w + 65536)
                    o = int(self._rng.integers(0, 65536))
                    out = bank[o : o + 3 * h * w].reshape(h, w, 3) * std_dn
                    out += clean_dn
                    if still:
                        np.clip(out, 0.0, maxdn + 0.49, out=out)
                        frame = out.astype(dtype)
                        if frame.nbytes * 3 <= LIVE_NOISY_BYTES:
                            kept.append(frame)
                            self._live_pick = len(kept) - 1
                        return frame.copy()
            else:
                e = self.render_clean(x_um, y_um, z_um, objective, shape, exposure_ms, lamp_on,
                                      roi=roi)
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
                     lamp_on: bool = True, live: bool = False,
                     roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Expected photo-electrons (H, W, 3) float32, before noise and full-well clipping.

        ``roi=(x0, y0, w, h)``: only that region of the ``shape`` sensor (see `render`).
        """
        roi = _check_roi(shape, roi)
        with self._lock:
            if live:  # the live path is tiled and cached: crop the full frame
                t = self._live_transmission(x_um, y_um, z_um, objective, shape)
                if roi is not None:
                    t = t[roi[1] : roi[1] + roi[3], roi[0] : roi[0] + roi[2]]
            else:
                t = self.transmission(x_um, y_um, z_um, objective, shape, roi=roi)
        if not lamp_on:
            return np.zeros_like(t)
        vig = _vignette(*shape)
        if roi is not None:
            vig = vig[roi[1] : roi[1] + roi[3], roi[0] : roi[0] + roi[2]]
        return t * (vig * np.float32(photon_rate_e_per_ms() * exposure_ms))

    def transmission(self, x_um: float, y_um: float, z_um: float, objective: str,
                     shape: tuple[int, int] = (1024, 1024),
                     roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Exact pixel-integrated image of the slide's transmission (H, W, 3), 1 = glass.

        With ``roi=(x0, y0, w, h)`` only that region of the ``shape`` frame is rendered: the
        same specimen points (the frame is centred on the ROI's centre, through the
        objective's rotation) at the frame's defocus.
        """
        opt = self.optics[objective]
        roi = _check_roi(shape, roi)
        # defocus belongs to the whole frame (the stage position), not to the ROI's centre
        dz = z_um - (slide.slide_surface_z(x_um, y_um) + opt.true_parfocal_z_um)
        if roi is not None:
            x_um, y_um = _roi_centre(x_um, y_um, shape, roi, opt)
            shape = (roi[3], roi[2])
        h, w = shape
        margin = margin_px(opt, dz)
        with self._lock:
            if self._pixel_sampled(opt, margin):  # a wider cached spectrum serves as well
                base = (objective, float(x_um), float(y_um), h, w)
                wider = [k[-1] for k in self._spec
                         if k[:-1] == base and margin < k[-1] <= 2 * margin]
                margin = min(wider, default=margin)
            skey = (objective, float(x_um), float(y_um), h, w, margin)
            ikey = (skey, round(dz, 4))
            if ikey in self._exact_img:
                return self._exact_img.get_or(ikey, None)
            lay, mh, mw = self._frame_layout(shape, opt, margin)
            fine = self._frame_grid(x_um, y_um, shape, opt, lay, mh, mw)
            if self._pixel_sampled(opt, margin):
                spec = self._spec.get_or(skey, lambda: defocused_spectrum(slide.Grid(
                    fine.x0, fine.y0, opt.pixel_size_um, lay.nh, lay.nw, fine.theta,
                    self._texture_seed)))
                img = self._defocused_image(spec, opt, dz)
            else:
                spec = self._spec.get_or(skey, lambda: self._object_spectrum(fine, lay, opt))
                img = self._image(spec, lay, opt, dz)
            t = np.ascontiguousarray(img[:, mh : mh + h, mw : mw + w].transpose(1, 2, 0))
            t.flags.writeable = False  # cached and shared: callers must copy to modify
            return self._exact_img.get_or(ikey, lambda: t)

    def clear_cache(self) -> None:
        """Drop every cached spectrum and image (frees memory)."""
        with self._lock:
            for c in (self._spec, self._exact_img, self._tile_spec, self._wide_spec,
                      self._tile_img,
                      self._prev_spec, self._prev_img):
                c.clear()
            self._live_key = self._live = self._last = None
            self._live_noisy = []
            self._wanted, self._inflight = [], set()
            self._gen += 1
            self._settled = True

    @property
    def texture_seed(self) -> int:
        """The realisation of the fine textures this renderer draws (0: default slide)."""
        return self._texture_seed

    @property
    def live_settled(self) -> bool:
        """True when the last live frame was made only of exact tiles (no preview tiles)."""
        with self._lock:
            return self._settled

    # ------------------------------------------------------------------ exact frames
    # ------------------------------------------------------------------ optics hooks
    def _pixel_sampled(self, opt: SimOptics, margin: int) -> bool:
        """Wide-margin (defocused) frames sample the specimen at the pixel centres."""
        return margin > MARGIN_PX

    def _defocused_image(self, spec: np.ndarray, opt: SimOptics, dz_um: float) -> np.ndarray:
        """Image of a wide-margin frame from its `defocused_spectrum`."""
        return defocused_image(spec, opt, dz_um, opt.pixel_size_um)

    def _object_spectrum(self, grid: slide.Grid, lay: _Layout, opt: SimOptics) -> np.ndarray:
        """What is cached per position: here the transmission spectrum × pixel box."""
        return object_spectrum(grid, lay, opt)

    def _image(self, spec: np.ndarray, lay: _Layout, opt: SimOptics, dz_um: float,
               tile: bool = False) -> np.ndarray:
        """Pixel-integrated intensity (3, Nh, Nw) at defocus dz_um from a cached spectrum."""
        otf = _tile_otf(lay, opt, dz_um) if tile else None
        return image_from_spectrum(spec, lay, opt, dz_um, otf=otf)

    @staticmethod
    def _frame_layout(shape: tuple[int, int], opt: SimOptics,
                      margin: int = MARGIN_PX) -> tuple[_Layout, int, int]:
        h, w = shape
        nh, nw = _even_fast(h + 2 * margin), _even_fast(w + 2 * margin)
        return _Layout(nh, nw, opt.pixel_size_um), (nh - h) // 2, (nw - w) // 2

    def _frame_grid(self, x: float, y: float, shape: tuple[int, int], opt: SimOptics,
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
        return slide.Grid(x0, y0, p / 2, nr, nc, th, self._texture_seed)

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

    def _note_live_frame(self, objective: str, shape: tuple[int, int],
                         anchor: tuple[int, int]) -> str:
        """Track stage motion between live frames: 'first', 'still' or 'moving'."""
        now = time.perf_counter()
        last, self._last = self._last, (objective, shape, tuple(anchor), now)
        if last is None or last[0] != objective or last[1] != shape:
            self._vel = (0.0, 0.0)
            return "first"
        di, dj = anchor[0] - last[2][0], anchor[1] - last[2][1]
        if di == 0 and dj == 0:
            self._vel = (0.5 * self._vel[0], 0.5 * self._vel[1])
            return "still"
        dt = max(now - last[3], 1e-3)
        self._vel = (0.5 * (self._vel[0] + di / dt), 0.5 * (self._vel[1] + dj / dt))
        return "moving"

    @staticmethod
    def _view_tiles(i0: float, j0: float, h: int, w: int) -> list[tuple[int, int]]:
        """Tiles covering a view, nearest to its centre first."""
        T = TILE_PX
        i0, j0 = math.floor(i0), math.floor(j0)
        ci, cj = i0 + h / 2, j0 + w / 2
        tiles = [(ti, tj) for ti in range(i0 // T, (i0 + h - 1) // T + 1)
                 for tj in range(j0 // T, (j0 + w - 1) // T + 1)]
        tiles.sort(key=lambda t: (t[0] * T + T / 2 - ci) ** 2 + (t[1] * T + T / 2 - cj) ** 2)
        return tiles

    def _live_transmission(self, x: float, y: float, z: float, objective: str,
                           shape: tuple[int, int]) -> np.ndarray:
        opt = self.optics[objective]
        h, w = shape
        anchor = self._live_anchor(x, y, objective, shape)
        mode = self._note_live_frame(objective, shape, anchor)
        i0, j0 = anchor
        tiles = self._view_tiles(i0, j0, h, w)
        missing = [t for t in tiles if (objective, *t) not in self._tile_spec]

        if missing and self._snap_refocuses(objective, opt, x, y, z, shape):
            # a snap was taken right here: its cached spectrum re-focuses the frame exactly
            self._request(objective, opt, missing)
            self._settled = True
            return self.transmission(x, y, z, objective, shape)

        if mode == "first" and self.quick_first_frame and missing:
            self.quick_first_frame = False  # once: an application's first image, at once
            mode = "moving"  # previews now, the worker renders the exact tiles
        if mode == "first":  # nothing to show yet (or a new objective): exact tiles now
            for t in missing:
                self._check_abort()
                self._ensure_spec(objective, opt, *t)
            missing = []
        elif mode == "still":  # refine: at least one exact tile per frame, within a budget
            deadline = time.perf_counter() + STILL_BUDGET_S
            for t in list(missing):
                if (objective, *t) in self._inflight:
                    continue
                self._check_abort()
                self._ensure_spec(objective, opt, *t)
                missing.remove(t)
                if time.perf_counter() > deadline:
                    break
            missing = [t for t in missing if (objective, *t) not in self._tile_spec]
        if mode == "moving":
            vi, vj = self._vel
            ahead = self._view_tiles(i0 + vi * PREFETCH_LEAD_S, j0 + vj * PREFETCH_LEAD_S, h, w)
            self._request(objective, opt, ahead + missing)
        else:
            self._request(objective, opt, missing)

        out = np.empty((h, w, 3), np.float32)
        T = TILE_PX
        for ti, tj in tiles:
            self._check_abort()
            dzq = self._tile_dz(opt, ti, tj, z)
            if (objective, ti, tj) in self._tile_spec:
                tile = self._exact_tile(objective, opt, ti, tj, dzq)
            else:
                tile = self._preview_tile(objective, opt, ti, tj, dzq)
            r0, r1 = max(i0, ti * T), min(i0 + h, (ti + 1) * T)
            c0, c1 = max(j0, tj * T), min(j0 + w, (tj + 1) * T)
            out[r0 - i0 : r1 - i0, c0 - j0 : c1 - j0] = tile[
                r0 - ti * T : r1 - ti * T, c0 - tj * T : c1 - tj * T
            ]
        self._settled = not missing
        self._warm_textures()
        return out

    def _check_abort(self) -> None:
        if self.abort_live.is_set():
            raise RenderAborted

    def _snap_refocuses(self, objective: str, opt: SimOptics, x: float, y: float, z: float,
                        shape: tuple[int, int]) -> bool:
        """True when a snap here left a spectrum that gives this live frame cheaply."""
        dz = z - (slide.slide_surface_z(x, y) + opt.true_parfocal_z_um)
        return (objective, float(x), float(y), *shape, margin_px(opt, dz)) in self._spec

    # ---- one tile
    @staticmethod
    def _tile_origin(opt: SimOptics, ti: int, tj: int,
                     margin: int = MARGIN_PX) -> tuple[float, float, float]:
        """Slide position of the tile's first (margin) pixel centre and the lattice angle."""
        T, M, p = TILE_PX, margin, opt.pixel_size_um
        th = math.radians(opt.true_rotation_deg)
        u0, v0 = (tj * T - M) * p, (ti * T - M) * p
        return math.cos(th) * u0 - math.sin(th) * v0, math.sin(th) * u0 + math.cos(th) * v0, th

    @staticmethod
    def _tile_dz(opt: SimOptics, ti: int, tj: int, z: float) -> float:
        """Defocus at the tile centre (the slide is tilted), quantised to 0.02 µm."""
        T, p = TILE_PX, opt.pixel_size_um
        th = math.radians(opt.true_rotation_deg)
        c, s = math.cos(th), math.sin(th)
        uc, vc = (tj * T + T / 2) * p, (ti * T + T / 2) * p
        sx = c * uc - s * vc - opt.true_offset_xy_um[0]
        sy = s * uc + c * vc - opt.true_offset_xy_um[1]
        dz = z - (slide.slide_surface_z(sx, sy) + opt.true_parfocal_z_um)
        return round(round(dz / 0.02) * 0.02, 3)

    @staticmethod
    def _tile_layout(opt: SimOptics, margin: int = MARGIN_PX) -> _Layout:
        return _Layout(TILE_PX + 2 * margin, TILE_PX + 2 * margin, opt.pixel_size_um)

    def _exact_tile_spectrum(self, opt: SimOptics, ti: int, tj: int,
                             margin: int = MARGIN_PX) -> np.ndarray:
        lay = self._tile_layout(opt, margin)
        x0, y0, th = self._tile_origin(opt, ti, tj, margin)
        grid = slide.Grid(x0, y0, opt.pixel_size_um / 2, *lay.fine, th, self._texture_seed)
        return self._object_spectrum(grid, lay, opt)

    def _ensure_spec(self, objective: str, opt: SimOptics, ti: int, tj: int) -> np.ndarray:
        return self._tile_spec.get_or((objective, ti, tj),
                                      lambda: self._exact_tile_spectrum(opt, ti, tj))

    def _exact_tile(self, objective: str, opt: SimOptics, ti: int, tj: int,
                    dzq: float) -> np.ndarray:
        T, M = TILE_PX, margin_px(opt, dzq)

        def make() -> np.ndarray:
            lay = self._tile_layout(opt, M)
            if M == MARGIN_PX:
                spec = self._ensure_spec(objective, opt, ti, tj)
            elif self._pixel_sampled(opt, M):  # far from focus: a wider tile holds the blur
                x0, y0, th = self._tile_origin(opt, ti, tj, M)
                spec = self._wide_spec.get_or((objective, ti, tj, M), lambda: (
                    defocused_spectrum(slide.Grid(x0, y0, opt.pixel_size_um, lay.nh, lay.nw,
                                                  th, self._texture_seed))))
                img = self._defocused_image(spec, opt, dzq)
                return np.ascontiguousarray(img[:, M : M + T, M : M + T].transpose(1, 2, 0))
            else:
                spec = self._wide_spec.get_or((objective, ti, tj, M), lambda: (
                    self._exact_tile_spectrum(opt, ti, tj, M)))
            img = self._image(spec, lay, opt, dzq, tile=True)
            return np.ascontiguousarray(img[:, M : M + T, M : M + T].transpose(1, 2, 0))

        return self._tile_img.get_or((objective, ti, tj, dzq), make)

    def _preview_tile(self, objective: str, opt: SimOptics, ti: int, tj: int,
                      dzq: float) -> np.ndarray:
        """Cheap stand-in while the stage moves: specimen sampled COARSE x coarser."""
        T, M, p = TILE_PX, MARGIN_PX, opt.pixel_size_um
        n_px = T + 2 * M
        nc, d = 2 * n_px // COARSE, COARSE * p / 2

        def make_spec() -> np.ndarray:
            x0, y0, th = self._tile_origin(opt, ti, tj)
            return _transmission_spectra(slide.Grid(x0, y0, d, nc, nc, th, self._texture_seed))

        def make() -> np.ndarray:
            spec = self._prev_spec.get_or((objective, ti, tj), make_spec)
            img = preview_image(spec, n_px, d, p, opt, dzq)
            return np.ascontiguousarray(img[:, M : M + T, M : M + T].transpose(1, 2, 0))

        return self._prev_img.get_or((objective, ti, tj, dzq), make)

    def _warm_textures(self) -> None:
        """Once, after the first live frame, in a background thread: the texture mip levels
        that every objective's exact, preview and defocused grids sample, so a later frame
        (an objective change, a defocused move) does not compute them on the camera
        thread while the GUI may be waiting for it (stopping live joins that thread)."""
        if self._textures_warm:
            return
        self._textures_warm = True
        spacings = []
        for opt in list(self.optics.values()):
            p = opt.pixel_size_um
            spacings += [p / 2, COARSE * p / 2, p]
        def warm() -> None:
            if EXITING.wait(WARM_DELAY_S):  # not while the application is still starting
                return
            texture.warm(spacings, stop=EXITING.is_set, seed=self._texture_seed)

        start_background(threading.Thread(target=warm, name="sim-texture-warm", daemon=True))

    # ---- background worker (exact tile spectra; never holds the lock while computing)
    def _request(self, objective: str, opt: SimOptics, tiles: list[tuple[int, int]]) -> None:
        """Replace the worker's queue with these tiles (most urgent first)."""
        seen, jobs = set(), []
        for t in tiles:
            key = (objective, *t)
            if key in seen or key in self._tile_spec or key in self._inflight:
                continue
            seen.add(key)
            jobs.append((key, opt))
        self._wanted = jobs[: self._tile_spec.maxsize - 16]
        if self._wanted:
            self._wake.set()
            if self._worker is None:
                self._worker = start_background(threading.Thread(
                    target=self._work, name="sim-tile-prefetch", daemon=True), self._wake)

    def _work(self) -> None:
        while True:
            with self._lock:
                if EXITING.is_set():
                    self._worker = None
                    return
                job = None
                while self._wanted and job is None:
                    key, opt = self._wanted.pop(0)
                    if key not in self._tile_spec and key not in self._inflight:
                        job = key, opt
                if job is None:
                    self._wake.clear()
                else:
                    self._inflight.add(job[0])
                gen = self._gen
            if job is None:
                if self._wake.wait(1.0):
                    continue
                with self._lock:
                    if not self._wanted:  # idle for a while: end (restarted on demand)
                        self._worker = None
                        return
                continue
            (objective, ti, tj), opt = job
            try:
                spec = self._exact_tile_spectrum(opt, ti, tj)
            except Exception:  # noqa: BLE001 - the frame path will render it itself
                spec = None
            with self._lock:
                self._inflight.discard(job[0])
                if spec is not None and gen == self._gen and self.optics.get(objective) == opt:
                    self._tile_spec.get_or(job[0], lambda s=spec: s)
