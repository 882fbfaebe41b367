"""The simulated slide: a procedural, deterministic, effectively unbounded stained specimen.

Everything is a function of continuous slide coordinates (µm) and fixed seeds, so any stage
position, objective or sampling sees the same specimen. Stain *amounts* are returned per
sampling grid; optics.py turns them into Beer–Lambert transmission per colour channel.

Anti-aliasing: every feature has a physical edge width combined with a prefilter of
0.4 x the grid spacing, so content finer than the sampling grid is attenuated instead of
folding back into the optical passband (which would give the low-NA image detail it
physically cannot have).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse

from hardware.sim import texture

REGIONS: dict[str, tuple[float, float, float, float]] = {
    "epithelium": (0.0, 10000.0, -5000.0, 5000.0),
    "stroma": (10000.0, 20000.0, -5000.0, 5000.0),
    "lymphoid": (-10000.0, 0.0, -5000.0, 5000.0),
    "bar_target": (-12000.0, -11000.0, -500.0, 500.0),
    "line_targets": (-16000.0, -13000.0, -1500.0, 1500.0),
}
TARGET_REGIONS = ("bar_target", "line_targets")
"""Regions on clean glass that are not tissue (no tissue is drawn inside them)."""
GLASS_Y_UM = 6000.0
"""Beyond |y| > this there is only clean glass."""
TISSUE_EDGE_Y_UM = 5500.0
"""The section's ragged edge sits around |y| = 5500 ± 300 µm."""

STAINS = ("hematoxylin", "eosin", "fibre", "neutral")
STAIN_OD_RGB = np.array(
    [
        [0.65, 0.70, 0.29],  # hematoxylin (Ruifrok & Johnston 2001 OD vector)
        [0.07, 0.99, 0.11],  # eosin
        [0.20, 0.95, 0.40],  # fibre: eosinophilic collagen, slightly more orange
        [1.00, 1.00, 1.00],  # neutral absorber: resolution-target bars
    ],
    dtype=np.float32,
)
"""Optical density per unit stain amount for the (R, G, B) channels."""

BAR_OD = 4.6
"""Natural-log optical density of the target bars (T ≈ 1 %): near-opaque like chrome."""
BAR_PERIODS_UM = (
    0.16, 0.18, 0.20, 0.22, 0.25, 0.28, 0.32, 0.36, 0.40, 0.50, 0.60, 0.80, 1.00,
    1.25, 1.60, 2.00, 2.50, 3.20, 4.00,
)
BAR_GROUP_SIZE_UM = 30.0
TILT_UM_PER_MM = (0.5, -0.3)


@dataclass(frozen=True)
class BarGroup:
    """One square patch of equal bars on glass; 'v' bars are vertical (contrast along x)."""

    period_um: float
    orientation: str
    center_xy_um: tuple[float, float]
    size_um: float


def tissue_at(x_um: float, y_um: float) -> str:
    """Name of what lies at a slide point: a REGIONS key or 'glass'."""
    for name in TARGET_REGIONS:
        xmin, xmax, ymin, ymax = REGIONS[name]
        if xmin <= x_um < xmax and ymin <= y_um < ymax:
            return name
    if abs(y_um) > GLASS_Y_UM:
        return "glass"
    return _band(x_um)


def _band(x_um: float) -> str:
    if x_um < 0.0:
        return "lymphoid"
    return "epithelium" if x_um < 10000.0 else "stroma"


@lru_cache(maxsize=1)
def bar_groups() -> list[BarGroup]:
    """Resolution target: vertical bars in the row y=-100, horizontal bars in y=+100."""
    groups = []
    for i, period in enumerate(BAR_PERIODS_UM):
        x = -11950.0 + 50.0 * i
        groups.append(BarGroup(period, "v", (x, -100.0), BAR_GROUP_SIZE_UM))
        groups.append(BarGroup(period, "h", (x, 100.0), BAR_GROUP_SIZE_UM))
    return groups


def slide_surface_z(x_um: float, y_um: float) -> float:
    """Height (µm) of the specimen plane: a tilt plus a gentle waviness, so focus must track."""
    tx, ty = TILT_UM_PER_MM
    wave = 0.6 * math.sin(x_um / 2300.0 + 0.7) * math.cos(y_um / 3100.0 - 0.4)
    return float(tx * x_um / 1000.0 + ty * y_um / 1000.0 + wave)


# --------------------------------------------------------------------------- sampling grids
@dataclass(frozen=True)
class Grid:
    """Sampling lattice: sample (i, j) sits at origin + R(theta) @ (j*d, i*d) on the slide.

    ``texture_seed`` selects the realisation of the fine textures (texture.py) that the
    specimen sampled on this grid carries; 0 is the default slide."""

    x0: float
    y0: float
    d: float
    nr: int
    nc: int
    theta: float = 0.0
    texture_seed: int = 0

    def point(self, i: float, j: float) -> tuple[float, float]:
        c, s = math.cos(self.theta), math.sin(self.theta)
        u, v = j * self.d, i * self.d
        return self.x0 + c * u - s * v, self.y0 + s * u + c * v

    def index_of(self, x: float, y: float) -> tuple[float, float]:
        c, s = math.cos(self.theta), math.sin(self.theta)
        dx, dy = x - self.x0, y - self.y0
        return (-s * dx + c * dy) / self.d, (c * dx + s * dy) / self.d

    def bbox(self) -> tuple[float, float, float, float]:
        pts = [self.point(i, j) for i in (0, self.nr - 1) for j in (0, self.nc - 1)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), max(xs), min(ys), max(ys)

    def window(self, x: float, y: float, r: float) -> tuple[slice, slice] | None:
        """Rows/cols of the samples within ``r`` sample steps of slide point (x, y), or None
        when that square misses the grid."""
        fi, fj = self.index_of(x, y)
        i0, i1 = max(0, int(fi - r)), min(self.nr, int(fi + r) + 2)
        j0, j1 = max(0, int(fj - r)), min(self.nc, int(fj + r) + 2)
        if i0 >= i1 or j0 >= j1:
            return None
        return slice(i0, i1), slice(j0, j1)

    def local_xy(self, xr: float, yr: float, rows: slice, cols: slice) -> tuple[np.ndarray, ...]:
        """float32 coordinates relative to (xr, yr) for a sub-block (precise far from 0)."""
        c, s = math.cos(self.theta), math.sin(self.theta)
        jj = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] * np.float32(self.d)
        ii = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] * np.float32(self.d)
        ox, oy = np.float32(self.x0 - xr), np.float32(self.y0 - yr)
        return ox + np.float32(c) * jj - np.float32(s) * ii, oy + np.float32(s) * jj + np.float32(
            c
        ) * ii


def aa_width(d: float, physical: float = 0.015) -> float:
    """Logistic edge width: a physical edge combined with the sampling prefilter."""
    sigma = math.hypot(physical * 1.6, 0.4 * d)
    return sigma / 1.6


class RenderAborted(Exception):
    """A live frame was abandoned because its sequence is being stopped."""


_abort = threading.local()


@contextlib.contextmanager
def abandon_when(event: threading.Event | None) -> Iterator[None]:
    """While the body runs on this thread, specimen synthesis raises RenderAborted soon
    after ``event`` is set: a stopped camera thread leaves its tile within a few nuclei
    instead of finishing it (hundreds of ms of Python loops under load, all the while
    taking the GIL from the GUI thread and keeping the job that waits for it waiting)."""
    prev = getattr(_abort, "event", None)
    _abort.event = event
    try:
        yield
    finally:
        _abort.event = prev


def check_abort() -> None:
    """Raise RenderAborted when this thread renders for a sequence being stopped."""
    event = getattr(_abort, "event", None)
    if event is not None and event.is_set():
        raise RenderAborted


# --------------------------------------------------------------------------- hashing / noise
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix-style integer hash of lattice cells -> uint64 (wraps silently)."""
    with np.errstate(over="ignore"):
        h = (np.asarray(ix, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            np.asarray(iy, np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        )
        h = h ^ np.uint64((seed * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _uniforms(ix: np.ndarray, iy: np.ndarray, seed: int, n: int) -> np.ndarray:
    """n independent U[0,1) per cell, shape (n, *ix.shape)."""
    out = []
    for k in range(n):
        h = _hash(ix, iy, seed * 7919 + k * 104729 + 1)
        out.append((h >> np.uint64(11)).astype(np.float64) / float(1 << 53))
    return np.stack(out)


def value_noise(x: np.ndarray, y: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Smooth lattice noise in [-1, 1] with feature size `scale` µm (float64 coordinates)."""
    fx, fy = np.asarray(x, np.float64) / scale, np.asarray(y, np.float64) / scale
    ix, iy = np.floor(fx), np.floor(fy)
    tx, ty = fx - ix, fy - iy
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    ix, iy = ix.astype(np.int64), iy.astype(np.int64)

    def corner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (_hash(a, b, seed) >> np.uint64(11)).astype(np.float64) / float(1 << 52) - 1.0

    v00, v10 = corner(ix, iy), corner(ix + 1, iy)
    v01, v11 = corner(ix, iy + 1), corner(ix + 1, iy + 1)
    return (v00 * (1 - tx) + v10 * tx) * (1 - ty) + (v01 * (1 - tx) + v11 * tx) * ty


def fbm(x: np.ndarray, y: np.ndarray, scale: float, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise, roughly in [-1, 1]."""
    total: np.ndarray | float = 0.0
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        total = total + amp * value_noise(x, y, scale / 2**o, seed + 31 * o)
        norm += amp
        amp *= 0.5
    return np.asarray(total) / norm


def _smooth01(t: np.ndarray) -> np.ndarray:
    return np.clip(t, 0.0, 1.0)


# --------------------------------------------------------------------------- large-scale fields
def tissue_fields(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Slowly varying fields (scale >= ~8 µm) at slide points (float64 arrays).

    Returns per-point weights of each tissue type (0..1; 0 on glass, in lumens and in the
    target windows) and the eosin (cytoplasm/stroma) density.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    edge = TISSUE_EDGE_Y_UM + 300.0 * fbm(x, y, 400.0, 11, 2)
    present = _smooth01((edge - np.abs(y)) / 3.0)
    for name in TARGET_REGIONS:
        bx0, bx1, by0, by1 = REGIONS[name]
        inside = (
            _smooth01((x - bx0) / 2.0)
            * _smooth01((bx1 - x) / 2.0)
            * _smooth01((y - by0) / 2.0)
            * _smooth01((by1 - y) / 2.0)
        )
        present = present * (1.0 - inside)
    # soft (2 µm) boundaries between the x bands
    w_epi_right = _smooth01((10000.0 - x) / 2.0 + 0.5)
    w_lym = _smooth01((0.0 - x) / 2.0 + 0.5)
    w_str = 1.0 - w_epi_right
    w_epi = w_epi_right - w_lym
    # epithelium: glands with lumens and a little stroma between them
    lumen_n = fbm(x, y, 70.0, 21, 2)
    lumen = _smooth01((lumen_n - 0.35) / 0.012)
    w_epi_lumen = w_epi * (1.0 - lumen)
    # lymphoid: a few vessels / clear spaces
    clear = _smooth01((fbm(x, y, 120.0, 41, 2) - 0.55) / 0.04)
    w_lym = w_lym * (1.0 - clear)
    var = fbm(x, y, 25.0, 51, 3)
    eosin = present * (
        w_epi_lumen * (0.45 + 0.12 * var)
        + w_str * (0.22 + 0.08 * var)
        + w_lym * (0.18 + 0.06 * var)
    )
    return {
        "present": present,
        "epithelium": present * w_epi_lumen,
        "stroma": present * w_str,
        "lymphoid": present * w_lym,
        "eosin": eosin,
    }


def _interp_matrix(coord: np.ndarray, n0: int, m: int) -> sparse.csr_matrix:
    """Sparse (len(coord), m) linear interpolation from lattice nodes n0..n0+m-1 (unit spacing)."""
    f = np.floor(coord)
    t = (coord - f).astype(np.float32)
    k = f.astype(np.int64) - n0
    rows = np.repeat(np.arange(coord.size), 2)
    cols = np.stack([k, k + 1], axis=1).ravel()
    vals = np.stack([1.0 - t, t], axis=1).ravel()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(coord.size, m))


class _Coarse:
    """Smooth fields on a coarse lattice, linearly interpolated onto a Grid.

    The lattice is fixed in the slide frame rotated by the grid's angle (node (m, n) at
    R(theta) @ (n*h, m*h)), so every grid of one objective interpolates identical values at
    a given slide point: tiles and whole frames agree exactly.
    """

    def __init__(self, grid: Grid, h: float) -> None:
        self.grid, self.h = grid, h
        c, s = math.cos(grid.theta), math.sin(grid.theta)
        u0 = c * grid.x0 + s * grid.y0
        v0 = -s * grid.x0 + c * grid.y0
        uc = (u0 + np.arange(grid.nc) * grid.d) / h
        vr = (v0 + np.arange(grid.nr) * grid.d) / h
        n0, m0 = math.floor(uc[0]), math.floor(vr[0])
        nn, mm = math.floor(uc[-1]) + 2 - n0, math.floor(vr[-1]) + 2 - m0
        self.ac = _interp_matrix(uc, n0, nn)
        self.ar = _interp_matrix(vr, m0, mm)
        un = (n0 + np.arange(nn))[None, :] * h
        vm = (m0 + np.arange(mm))[:, None] * h
        self.x = c * un - s * vm
        self.y = s * un + c * vm

    def up(self, field: np.ndarray) -> np.ndarray:
        tmp = self.ar @ field.astype(np.float32)  # (nr, nn)
        return np.ascontiguousarray((self.ac @ tmp.T).T, dtype=np.float32)


# --------------------------------------------------------------------------- features
@dataclass(frozen=True)
class _NucleusKind:
    cell_um: float
    density: float
    a_um: tuple[float, float]
    b_um: tuple[float, float]
    od: tuple[float, float]
    chromatin: float
    nucleoli: int
    seed: int


CHROMATIN_MIX = {
    "epithelium": (0.35, 0.30, 0.10, 0.25),
    "stroma": (0.30, 0.35, 0.15, 0.20),
    "lymphoid": (0.35, 0.05, 0.45, 0.15),
}
"""Probability of each texture.CHROMATIN spectrum (clumpy, fine, coarse, reticular) per
nucleus of a tissue; half the nuclei blend a second one drawn the same way."""

NUCLEI = {
    "epithelium": _NucleusKind(9.0, 0.92, (3.0, 4.2), (2.2, 3.0), (0.45, 0.75), 0.7, 2, 101),
    "stroma": _NucleusKind(16.0, 0.55, (4.5, 7.0), (0.9, 1.4), (0.6, 0.9), 0.5, 0, 202),
    "lymphoid": _NucleusKind(6.4, 0.95, (2.0, 2.7), (1.9, 2.5), (0.9, 1.35), 1.0, 1, 303),
}


def stain_maps(grid: Grid) -> np.ndarray:
    """Stain amounts (len(STAINS), nr, nc) float32 sampled on `grid` (anti-aliased)."""
    out = np.zeros((len(STAINS), grid.nr, grid.nc), np.float32)
    xmin, xmax, ymin, ymax = grid.bbox()
    pad = 10.0
    tissue_possible = min(abs(ymin), abs(ymax)) <= GLASS_Y_UM or ymin < 0 < ymax
    if tissue_possible:
        _tissue(grid, out, (xmin - pad, xmax + pad, ymin - pad, ymax + pad))
    _bars(grid, out)
    _line_targets(grid, out)
    return out


def _tissue(grid: Grid, out: np.ndarray, bbox: tuple[float, float, float, float]) -> None:
    co = _Coarse(grid, max(1.0, 4.0 * grid.d))
    f = tissue_fields(co.x, co.y)
    if float(f["present"].max()) <= 0.0:
        return
    xr, yr = _ref_point(grid)
    rows, cols = slice(0, grid.nr), slice(0, grid.nc)
    xl, yl = grid.local_xy(xr, yr, rows, cols)
    w = aa_width(grid.d)
    # cytoplasm / stroma ground substance: eosin with granular texture
    gran = _granules(grid, co, f, xl, yl)
    eos = co.up(f["eosin"])
    out[1] = eos * (0.75 + 0.5 * gran)
    if float(f["stroma"].max()) > 0.0:
        out[2] = _fibres(grid, co, f, xl, yl, xr, yr)
    del xl, yl, gran
    for name, kind in NUCLEI.items():
        check_abort()
        if float(f[name].max()) > 0.0:
            _nuclei(grid, out, kind, name, bbox, w)


GRANULE_MIX = {
    "epithelium": ("granular", "granular_fine"),
    "stroma": ("granular_fine", "granular_coarse"),
    "lymphoid": ("granular", "granular_coarse"),
}
"""The two granule textures each tissue's ground substance blends, in patches of ~30 µm."""


def _granules(grid: Grid, co: _Coarse, f: dict, xl: np.ndarray, yl: np.ndarray) -> np.ndarray:
    """Granular texture of the cytoplasm / ground substance: per tissue a patchy blend of
    two granule spectra (pure patches and mixtures, ~30 µm), weights on the coarse lattice
    (they sum to 1 everywhere, so the mean is every spectrum's 0.5). Only the textures with
    weight in this grid are looked up (two inside one tissue)."""
    seed = grid.texture_seed
    weights = {k: np.zeros_like(co.x) for k in texture.GRANULAR}
    total = np.zeros_like(co.x)
    for n, (name, (a, b)) in enumerate(GRANULE_MIX.items()):
        ft = f[name]
        if float(ft.max()) <= 0.0:
            continue
        mix = _smooth01(0.5 + 1.5 * fbm(co.x, co.y, 30.0, 701 + 37 * n + 10007 * seed, 2))
        weights[a] += ft * (1.0 - mix)
        weights[b] += ft * mix
        total += ft
    empty = total < 1e-6  # glass / lumen: no eosin there, any texture will do
    weights["granular"][empty] = 1.0
    total[empty] = 1.0
    used = [k for k, wk in weights.items() if float(wk.max()) > 0.0]
    idx = texture.indices(xl, yl, grid.d)
    # the weights sum to 1: the first texture plus weighted differences to the others
    base = texture.sample(used[0], idx, grid.d, seed)
    gran = base.copy() if len(used) > 1 else base
    for k in used[1:]:
        t = texture.sample(k, idx, grid.d, seed)
        t -= base
        t *= co.up(weights[k] / total)
        gran += t
    return gran


def _ref_point(grid: Grid) -> tuple[float, float]:
    """A reference point on the texture period lattice near the grid (keeps float32 exact)."""
    per = texture.PERIOD_UM
    cx, cy = grid.point(grid.nr / 2, grid.nc / 2)
    return per * round(cx / per), per * round(cy / per)


_FIBRE_ORIENT = (0.35, 1.25, 2.3)


def _fibres(grid: Grid, co: _Coarse, f: dict, xl: np.ndarray, yl: np.ndarray,
            xr: float, yr: float) -> np.ndarray:
    """Collagen fibres: wavy periodic ridges in three orientation families with patchy weights."""
    acc = np.zeros((grid.nr, grid.nc), np.float32)
    sig_aa = 0.4 * grid.d
    for n, phi in enumerate(_FIBRE_ORIENT):
        check_abort()
        lam = 1.3 + 0.5 * n
        width = 0.10 + 0.07 * n
        weight = f["stroma"] * _smooth01((fbm(co.x, co.y, 45.0, 601 + n, 2) + 0.05) * 4.0)
        if float(weight.max()) <= 0.0:
            continue
        warp = 3.0 * fbm(co.x, co.y, 18.0, 621 + n, 3)
        c, s = math.cos(phi), math.sin(phi)
        # world-consistent offsets, reduced modulo the texture period in each lookup axis
        ph0 = math.fmod((xr * c + yr * s) / lam, texture.PERIOD_UM / 0.4)
        al0 = math.fmod(-xr * s + yr * c, texture.PERIOD_UM / 0.04)
        along = xl * np.float32(-s) + yl * np.float32(c) + np.float32(al0)
        phase = (xl * np.float32(c / lam) + yl * np.float32(s / lam)) + np.float32(ph0)
        phase += co.up(warp)
        # per-fibre brightness that varies along the fibre: anisotropic texture lookup
        seg = texture.lookup("granular", along * np.float32(0.04), phase * np.float32(0.4), 0.1,
                             grid.texture_seed)
        phase -= np.round(phase)
        phase *= np.float32(lam)
        sig = math.hypot(width, sig_aa)
        np.square(phase, out=phase)
        phase *= np.float32(-0.5 / sig**2)
        np.exp(phase, out=phase)
        seg -= np.float32(0.35)
        np.clip(seg, 0.0, None, out=seg)
        phase *= seg
        phase *= co.up(weight * (2.4 * width / sig))
        acc += phase
    return acc


def _nuclei(grid: Grid, out: np.ndarray, kind: _NucleusKind, name: str,
            bbox: tuple[float, float, float, float], w: float) -> None:
    L = kind.cell_um
    amax = kind.a_um[1] + 1.0
    xmin, xmax, ymin, ymax = bbox
    ix = np.arange(math.floor((xmin - amax) / L), math.floor((xmax + amax) / L) + 1)
    iy = np.arange(math.floor((ymin - amax) / L), math.floor((ymax + amax) / L) + 1)
    IX, IY = (g.ravel() for g in np.meshgrid(ix, iy))
    u = _uniforms(IX, IY, kind.seed, 7)
    cx = (IX + 0.15 + 0.7 * u[0]) * L
    cy = (IY + 0.15 + 0.7 * u[1]) * L
    weight = tissue_fields(cx, cy)[name]
    keep = u[2] < kind.density * weight
    if not np.any(keep):
        return
    cx, cy, u = cx[keep], cy[keep], u[:, keep]
    uq_all = [_uniforms(IX[keep], IY[keep], kind.seed + 7 + 13 * q, 3)
              for q in range(kind.nucleoli)]
    a = kind.a_um[0] + (kind.a_um[1] - kind.a_um[0]) * u[3]
    b = kind.b_um[0] + (kind.b_um[1] - kind.b_um[0]) * u[4]
    if name == "stroma":  # align spindle nuclei with the local fibre family
        psi = np.array(_FIBRE_ORIENT)[(u[5] * 3).astype(int)] + 0.3 * (u[6] - 0.5)
    else:
        psi = u[5] * math.pi
    od = kind.od[0] + (kind.od[1] - kind.od[0]) * u[6]
    # chromatin: spectra, blend, contrast, texture rotation and offset per nucleus (hashed
    # with the texture seed, so re-seeding re-draws them but keeps the nuclei)
    tu = _uniforms(IX[keep], IY[keep], kind.seed + 31 + 7919 * grid.texture_seed, 8)
    cdf = np.cumsum(CHROMATIN_MIX[name])
    first = np.minimum(np.searchsorted(cdf, tu[0] * cdf[-1], side="right"), len(cdf) - 1)
    second = np.minimum(np.searchsorted(cdf, tu[1] * cdf[-1], side="right"), len(cdf) - 1)
    blend = np.where((tu[2] < 0.5) & (second != first), 0.2 + 0.6 * tu[3], 0.0)
    contrast = kind.chromatin * (0.7 + 0.6 * tu[4])
    rot = 2 * math.pi * tu[5]
    offx, offy = tu[6] * texture.PERIOD_UM, tu[7] * texture.PERIOD_UM
    d = grid.d
    for n in range(cx.size):
        if n % 16 == 0:
            check_abort()
        win = grid.window(cx[n], cy[n], (a[n] + 4 * w + 0.1) / d)
        if win is None:
            continue
        rows, cols = win
        dx, dy = grid.local_xy(cx[n], cy[n], rows, cols)
        cp, sp = np.float32(math.cos(psi[n])), np.float32(math.sin(psi[n]))
        up = dx * cp + dy * sp
        vp = dy * cp - dx * sp
        ia2, ib2 = np.float32(1 / a[n] ** 2), np.float32(1 / b[n] ** 2)
        fimp = up * up * ia2 + vp * vp * ib2 - 1.0
        grad = 2.0 * np.sqrt((up * ia2) ** 2 + (vp * ib2) ** 2) + 1e-6
        mask = 0.5 - 0.5 * np.tanh(fimp / grad / np.float32(2 * w))
        idx = texture.indices(up, vp, d, (math.cos(rot[n]), math.sin(rot[n])),
                              (offx[n], offy[n]))
        chrom = texture.sample(texture.CHROMATIN[first[n]], idx, d, grid.texture_seed)
        if blend[n] > 0.0:  # a second spectrum, at the same texels
            other = texture.sample(texture.CHROMATIN[second[n]], idx, d, grid.texture_seed)
            other -= chrom
            other *= np.float32(blend[n])
            chrom += other
        amt = mask * np.float32(od[n]) * (1.0 + np.float32(contrast[n]) * (chrom - 0.5))
        for q in range(kind.nucleoli):
            uq = uq_all[q][:, n]
            if uq[0] > 0.7:
                continue
            rq = 0.15 + 0.35 * uq[1]
            pu = (uq[2] - 0.5) * a[n] * 0.8
            pv = (uq[0] - 0.35) * b[n] * 0.8
            dq = np.sqrt((up - np.float32(pu)) ** 2 + (vp - np.float32(pv)) ** 2) - np.float32(rq)
            amt += np.float32(0.9) * (0.5 - 0.5 * np.tanh(dq / np.float32(2 * w)))
        out[0, rows, cols] += amt
        out[1, rows, cols] *= 1.0 - 0.6 * mask


def _bars(grid: Grid, out: np.ndarray) -> None:
    """Near-opaque bar groups of the resolution target, evaluated only where they appear."""
    xmin, xmax, ymin, ymax = grid.bbox()
    bx0, bx1, by0, by1 = REGIONS["bar_target"]
    if xmax < bx0 or xmin > bx1 or ymax < by0 or ymin > by1:
        return
    w = aa_width(grid.d, physical=0.005)
    d = grid.d
    for g in bar_groups():
        gx, gy = g.center_xy_um
        h = g.size_um / 2
        if gx + h < xmin or gx - h > xmax or gy + h < ymin or gy - h > ymax:
            continue
        win = grid.window(gx, gy, (h * 1.01 + 4 * w) / d + 2)
        if win is None:
            continue
        rows, cols = win
        dx, dy = grid.local_xy(gx, gy, rows, cols)
        along = dx if g.orientation == "v" else dy
        wave = _bar_wave(along, g.period_um, d)
        box = _soft_step(h - np.abs(dx), w) * _soft_step(h - np.abs(dy), w)
        # anti-alias in transmission (not OD) so the mean transmission is sampling-invariant
        trans = 1.0 - np.float32(1.0 - math.exp(-BAR_OD)) * np.clip(wave * box, 0.0, 1.0)
        out[3, rows, cols] -= np.log(trans)


def _bar_wave(u: np.ndarray, period: float, d: float) -> np.ndarray:
    """Bar profile (1 on a bar, 0 between), band-limited below the grid's Nyquist.

    A truncated, Gaussian-tapered Fourier series: a sampled square wave would fold its
    harmonics back into the passband as false low-frequency beats.
    """
    return _square_wave(u, period, 0.5, 0.9 / (2 * d), d)


def _soft_step(t: np.ndarray, w: float) -> np.ndarray:
    """0 → 1 across t = 0 with the logistic edge width ``w`` (aa_width): the anti-aliased
    edge of a box, a line window or a half plane."""
    return 0.5 + 0.5 * np.tanh(t / np.float32(2 * w))


# --------------------------------------------------------------------------- line targets
LINE_CELL_UM = 10.0
"""Side of one line-target cell: each holds one patch of random line structure."""
LINE_F_MAX = 7.0
"""Highest spatial frequency drawn (cycles/µm): beyond every objective's cutoff (100x/1.4 in
blue: 6.0), so what is left out could not reach any image."""


def _square_wave(u: np.ndarray, period: float, duty: float, f_lim: float,
                 d: float) -> np.ndarray:
    """Band-limited pulse train (1 on a line, 0 between) of the given duty cycle: its
    Fourier series up to ``f_lim`` with the sampling prefilter's Gaussian taper (σ 0.4 d).
    Harmonics whose coefficient vanishes (the even ones at duty 0.5) are skipped."""
    wave = np.full(u.shape, duty, np.float32)
    sigma = 0.4 * d
    k = 1
    while k / period < f_lim:
        ck = 2 * math.sin(math.pi * k * duty) / (k * math.pi)
        if abs(ck) > 1e-9:
            ck *= math.exp(-2 * (math.pi * sigma * k / period) ** 2)
            wave += np.float32(ck) * np.cos(u * np.float32(2 * math.pi * k / period))
        k += 1
    return wave


def _line_targets(grid: Grid, out: np.ndarray) -> None:
    """A generic prior of fine, high-contrast structure (not the resolution target): cells of
    LINE_CELL_UM, each with one soft-edged patch of random line structure drawn from a hash
    of the cell. Kinds: a grating, a few lines, a dot lattice or an edge; period log-uniform
    0.22-3 µm (half of the cells 0.22-0.6, around the 40x cutoff), any orientation, duty
    0.25-0.75, a neutral absorber (OD 0.15-4.6) or hematoxylin / eosin (0.1-2)."""
    xmin, xmax, ymin, ymax = grid.bbox()
    bx0, bx1, by0, by1 = REGIONS["line_targets"]
    if xmax < bx0 or xmin > bx1 or ymax < by0 or ymin > by1:
        return
    c = LINE_CELL_UM
    f_lim = min(0.9 / (2 * grid.d), LINE_F_MAX)
    w = aa_width(grid.d, physical=0.01)
    i0, i1 = math.floor(max(xmin, bx0) / c), math.floor(min(xmax, bx1 - 1e-6) / c)
    j0, j1 = math.floor(max(ymin, by0) / c), math.floor(min(ymax, by1 - 1e-6) / c)
    for ci in range(i0, i1 + 1):
        for cj in range(j0, j1 + 1):
            check_abort()
            r = _uniforms(np.array(ci), np.array(cj), 977, 9)
            kind = int(r[0] * 4.0)  # 0 grating, 1 a few lines, 2 dots, 3 edge
            lo, hi = (0.22, 0.6) if r[1] < 0.5 else (0.6, 3.0)
            period = float(math.exp(math.log(lo) + float(r[2]) * math.log(hi / lo)))
            theta = float(r[3]) * math.pi
            duty = 0.25 + 0.5 * float(r[4])
            stain = 3 if r[5] < 0.6 else int(r[5] * 10) % 2  # neutral, or hematoxylin / eosin
            top = 4.6 if stain == 3 else 2.0
            lo_a = 0.15 if stain == 3 else 0.1
            amount = float(math.exp(math.log(lo_a) + float(r[6]) * math.log(top / lo_a)))
            half = c * (0.3 + 0.17 * float(r[7]))  # patch half side 3-4.7 µm
            cx, cy = (ci + 0.5) * c, (cj + 0.5) * c
            win = grid.window(cx, cy, (half * 1.5 + 4 * w) / grid.d + 2)
            if win is None:
                continue
            rows, cols = win
            dx, dy = grid.local_xy(cx, cy, rows, cols)
            ct, st = np.float32(math.cos(theta)), np.float32(math.sin(theta))
            u = dx * ct + dy * st
            v = -dx * st + dy * ct
            if kind == 3:  # an edge: a half plane of the patch
                wave = _soft_step(u, w)
            else:
                wave = _square_wave(u, period, duty, f_lim, grid.d)
                if kind == 1:  # 1-5 lines
                    m = 0.5 * period * (1 + int(r[8] * 5))
                    wave *= _soft_step(m - np.abs(u), w)
                elif kind == 2:  # dots: the product of two crossed pulse trains
                    wave *= _square_wave(v, period, duty, f_lim, grid.d)
            box = _soft_step(half - np.abs(dx), w) * _soft_step(half - np.abs(dy), w)
            out[stain, rows, cols] += np.float32(amount) * np.clip(wave * box, 0.0, 1.0)
