"""Find the HR field inside the LR field and cut matched patches.

Why this way: the HR frame, downsampled by the scale (taken from the profiles' pixel sizes),
becomes a template at LR sampling. A normalised cross-correlation over the whole LR frame
finds it to a pixel; a short angle scan finds a small objective rotation; a Gauss-Newton
least-squares fit of (dx, dy, rotation, gain, bias) then brings it to a few hundredths of an
LR pixel. Patches are cut on the native LR grid and the HR frame is resampled (cubic) onto
``scale`` x that grid, so a network sees exactly co-registered pixels.

Transform convention: the HR frame centre lies at ``(dx_lr, dy_lr)`` LR px from the LR frame
centre, and an HR offset ``t`` (in LR px, x=col, y=row) from the HR centre lands at
``R(rotation) @ t`` from there, ``R = [[cos, -sin], [sin, cos]]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import match_template

#: equal smoothing (LR px) of both sides: suppresses noise and the detail only the HR
#: objective resolves, which otherwise biases the fit
SMOOTH_LR = 0.6


class RegistrationError(RuntimeError):
    """The HR field could not be located inside the LR field."""


@dataclass(frozen=True)
class Registration:
    """Where the HR field lies in the LR frame (see the module docstring for the convention)."""

    dx_lr: float
    dy_lr: float
    rotation_deg: float
    correlation: float
    shift_std_lr: float = 0.0
    """Standard error of the shift (LR px) from the fit: low texture -> large."""
    rotation_std_deg: float = 0.0
    """Standard error of the rotation (0 when the rotation was held at the hint)."""

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON metadata."""
        return {k: float(v) for k, v in asdict(self).items()}


def to_gray(img: np.ndarray) -> np.ndarray:
    """Float64 gray image (channel mean) from (H, W) or (H, W, C)."""
    a = np.asarray(img, dtype=np.float64)
    return a.mean(axis=2) if a.ndim == 3 else a


def _rot(theta_rad: float) -> np.ndarray:
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    return np.array([[c, -s], [s, c]])


class _Template:
    """The HR frame prepared once (blur + spline coefficients) so templates at several
    angles and sizes are cheap."""

    def __init__(self, hr_gray: np.ndarray, scale: float) -> None:
        self.shape = hr_gray.shape
        self.scale = scale
        sigma = scale / math.sqrt(12.0) + 0.3  # ~ the LR pixel's box, as a Gaussian
        self.coeffs = ndimage.spline_filter(ndimage.gaussian_filter(hr_gray, sigma), order=3)

    def size(self) -> tuple[int, int]:
        """Template side at LR sampling (the whole HR field)."""
        h, w = self.shape
        return int(h // self.scale), int(w // self.scale)

    def at(self, rotation_deg: float = 0.0, step: int = 1) -> np.ndarray:
        """Template on an LR-aligned grid (every ``step`` LR px), smoothed like the LR side."""
        h, w = self.shape
        n_r, n_c = self.size()
        v, u = np.mgrid[0:n_r:step, 0:n_c:step].astype(np.float64)
        u -= (n_c - 1) / 2.0
        v -= (n_r - 1) / 2.0
        # LR-grid offsets (u, v) -> HR offsets t = R(-theta) (u, v), in HR px = t * scale
        r = _rot(-math.radians(rotation_deg))
        tx = r[0, 0] * u + r[0, 1] * v
        ty = r[1, 0] * u + r[1, 1] * v
        coords = [(h - 1) / 2.0 + ty * self.scale, (w - 1) / 2.0 + tx * self.scale]
        t = ndimage.map_coordinates(self.coeffs, coords, order=3, mode="nearest",
                                    prefilter=False)
        return ndimage.gaussian_filter(t, SMOOTH_LR / step)


def hr_template(hr_gray: np.ndarray, scale: float, rotation_deg: float = 0.0) -> np.ndarray:
    """HR frame resampled to LR sampling (anti-aliased), centred on the HR centre; with a
    rotation, the HR content as seen on an LR-aligned grid."""
    return _Template(hr_gray, scale).at(rotation_deg)


def _bin(a: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return a
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return a[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / d) if d > 0 else 0.0


def _parabolic_peak(values: np.ndarray, i: int) -> float:
    """Sub-sample position of a maximum from its two neighbours."""
    if i <= 0 or i >= len(values) - 1:
        return float(i)
    y0, y1, y2 = values[i - 1], values[i], values[i + 1]
    den = y0 - 2 * y1 + y2
    return float(i) if den >= 0 else float(i + 0.5 * (y0 - y2) / den)


def _coarse(lr_s: np.ndarray, tpl: _Template, rotation_deg: float,
            k: int) -> tuple[float, float, float]:
    """Whole-frame NCC search on k-binned images, then the integer peak at full resolution;
    returns (dx, dy, peak) in LR px from the LR centre."""
    h, w = lr_s.shape
    th, tw = tpl.size()
    if th >= h or tw >= w:
        raise RegistrationError("the HR template is not smaller than the LR frame")
    small = _bin(tpl.at(rotation_deg, 1), k)
    ncc = match_template(_bin(lr_s, k), small)
    r0, c0 = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    # centre of the binned template in full-resolution LR px
    cy = r0 * k + (small.shape[0] * k - 1) / 2.0
    cx = c0 * k + (small.shape[1] * k - 1) / 2.0
    dx, dy = cx - (w - 1) / 2.0, cy - (h - 1) / 2.0
    if k > 1:  # integer peak at full resolution with a central part of the template
        full = tpl.at(rotation_deg)
        fh, fw = full.shape
        c = min(fh, 160 + fh % 2), min(fw, 160 + fw % 2)  # same parity: same centre
        r0, c0 = (fh - c[0]) // 2, (fw - c[1]) // 2
        dx, dy, _ = _local_peak(lr_s, full[r0:r0 + c[0], c0:c0 + c[1]], dx, dy, margin=k + 1)
    return dx, dy, float(ncc[r0, c0])


def _local_peak(lr_s: np.ndarray, tmpl: np.ndarray, dx: float, dy: float,
                margin: int = 4) -> tuple[float, float, float]:
    """Best NCC of the template within +-margin px of (dx, dy): (dx, dy, peak)."""
    h, w = lr_s.shape
    th, tw = tmpl.shape
    r0 = int(round((h - 1) / 2.0 + dy - (th - 1) / 2.0)) - margin
    c0 = int(round((w - 1) / 2.0 + dx - (tw - 1) / 2.0)) - margin
    r0, c0 = max(r0, 0), max(c0, 0)
    win = lr_s[r0:r0 + th + 2 * margin, c0:c0 + tw + 2 * margin]
    if win.shape[0] < th or win.shape[1] < tw:
        return dx, dy, -1.0
    ncc = match_template(win, tmpl)
    i, j = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    return (c0 + j + (tw - 1) / 2.0 - (w - 1) / 2.0, r0 + i + (th - 1) / 2.0 - (h - 1) / 2.0,
            float(ncc[i, j]))


def _refine(lr_s: np.ndarray, gx: np.ndarray, gy: np.ndarray, tmpl: np.ndarray,
            dx: float, dy: float, theta: float, fit_rotation: bool,
            iterations: int = 30, theta_bounds: tuple[float, float] = (-0.1, 0.1),
            stride: int = 1) -> tuple[float, float, float, float, np.ndarray]:
    """Gauss-Newton fit of translation (+rotation) with a smooth gain field and a bias.

    The gain is a quadratic polynomial over the template because the two frames carry
    different vignetting (the HR corners are dark, the LR is flat there): a single global
    gain would let that shading pull the translation. ``stride`` fits every n-th template
    pixel (large fields have far more pixels than the fit needs). Returns
    (dx, dy, theta, ncc, standard errors).
    """
    h, w = lr_s.shape
    th_, tw_ = tmpl.shape
    v, u = np.mgrid[0:th_:stride, 0:tw_:stride].astype(np.float64)
    tmpl = tmpl[::stride, ::stride]
    u = (u - (tw_ - 1) / 2.0).ravel()
    v = (v - (th_ - 1) / 2.0).ravel()
    un, vn = u / (tw_ / 2.0), v / (th_ / 2.0)
    basis = np.vstack([np.ones_like(un), un, vn, un * un, vn * vn, un * vn])  # gain field
    t = tmpl.ravel()
    cx0, cy0 = (w - 1) / 2.0, (h - 1) / 2.0
    coef = np.zeros(basis.shape[0])
    bias = 0.0
    sampled = t
    ok = np.ones_like(t, dtype=bool)
    for it in range(iterations):
        c, s = math.cos(theta), math.sin(theta)
        x = cx0 + dx + c * u - s * v
        y = cy0 + dy + s * u + c * v
        ok = (x >= 1) & (x <= w - 2) & (y >= 1) & (y <= h - 2)
        if ok.mean() < 0.3:
            raise RegistrationError("the HR field lies outside the LR frame")
        coords = [y[ok], x[ok]]
        sampled = ndimage.map_coordinates(lr_s, coords, order=3, mode="nearest", prefilter=False)
        lx = ndimage.map_coordinates(gx, coords, order=1)
        ly = ndimage.map_coordinates(gy, coords, order=1)
        b = basis[:, ok]
        if it == 0:  # initial photometric match by linear least squares
            a = np.vstack([b * sampled, np.ones_like(sampled)])
            sol = np.linalg.solve(a @ a.T, a @ t[ok])
            coef, bias = sol[:-1], sol[-1]
        gain = coef @ b
        resid = gain * sampled + bias - t[ok]
        cols = [gain * lx, gain * ly]
        if fit_rotation:
            uu, vv = u[ok], v[ok]
            cols.append(gain * (lx * (-s * uu - c * vv) + ly * (c * uu - s * vv)))
        jac = np.vstack([*cols, b * sampled, np.ones_like(sampled)])  # (params, pixels)
        normal = jac @ jac.T  # normal equations: far cheaper than lstsq on 10^5 rows
        step = np.linalg.solve(normal, -(jac @ resid))
        dx += step[0]
        dy += step[1]
        k = 2
        if fit_rotation:
            # stay inside the searched angle range
            theta = float(np.clip(theta + step[2], *theta_bounds))
            k = 3
        coef = coef + step[k:k + len(coef)]
        bias += step[-1]
        small_rot = not fit_rotation or abs(step[2]) < 1e-6
        if abs(step[0]) < 1e-4 and abs(step[1]) < 1e-4 and small_rot:
            break
    model = (coef @ basis[:, ok]) * sampled + bias
    # parameter standard errors from the Gauss-Newton normal matrix (relative confidence:
    # residuals of smoothed images are correlated, so these are optimistic)
    dof = max(1, len(resid) - jac.shape[0])
    sigma2 = float((resid * resid).sum()) / dof
    try:
        cov = sigma2 * np.linalg.inv(normal)
        std = np.sqrt(np.abs(np.diag(cov)))[: 3 if fit_rotation else 2]
    except np.linalg.LinAlgError:
        std = np.full(3 if fit_rotation else 2, np.inf)
    return dx, dy, theta, _ncc(model, t[ok]), std


def register(lr: np.ndarray, hr: np.ndarray, scale: float, rotation_deg_hint: float = 0.0,
             *, estimate_rotation: bool = True, angle_span_deg: float = 1.5) -> Registration:
    """Locate the HR frame inside the LR frame (see the module docstring for the convention).

    ``scale`` = LR pixel size / HR pixel size. With ``estimate_rotation`` the rotation is
    searched within ``rotation_deg_hint +- angle_span_deg`` and then fitted; otherwise it is
    held at the hint (faster, and robust on fields with little texture).
    """
    if scale <= 1.0:
        raise RegistrationError(f"scale must be > 1 (got {scale:g})")
    lr_s = ndimage.gaussian_filter(to_gray(lr), SMOOTH_LR)
    tpl = _Template(to_gray(hr), scale)
    th, _ = tpl.size()
    k = max(1, th // 96)  # the whole-frame search runs on ~100 px templates
    dx, dy, _ = _coarse(lr_s, tpl, rotation_deg_hint, k)
    theta_deg = rotation_deg_hint
    if estimate_rotation:
        angles = rotation_deg_hint + np.linspace(-angle_span_deg, angle_span_deg, 13)
        small_lr = _bin(lr_s, k)
        vals = np.array([
            _local_peak(small_lr, _bin(tpl.at(a, 1), k) if k > 1 else tpl.at(a), dx / k, dy / k,
                        margin=2)[2]
            for a in angles
        ])
        i = int(np.argmax(vals))
        theta_deg = float(np.interp(_parabolic_peak(vals, i), np.arange(len(angles)), angles))
    coeffs = ndimage.spline_filter(lr_s, order=3)
    gy, gx = np.gradient(lr_s)
    bounds = (math.radians(rotation_deg_hint - angle_span_deg),
              math.radians(rotation_deg_hint + angle_span_deg))
    dx, dy, theta, corr, std = _refine(coeffs, gx, gy, tpl.at(0.0), dx, dy,
                                       math.radians(theta_deg), estimate_rotation,
                                       theta_bounds=bounds, stride=max(1, th // 200))
    rot_std = float(math.degrees(std[2])) if estimate_rotation else 0.0
    return Registration(float(dx), float(dy), float(math.degrees(theta)), float(corr),
                        float(math.hypot(std[0], std[1])), rot_std)


def cut_patches(lr: np.ndarray, hr: np.ndarray, reg: Registration, scale: float,
                side: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Matched patches: an LR crop (side x side, native grid) centred on the HR field and
    the HR frame resampled (cubic) onto ``scale`` x that crop grid.

    The HR patch has round(side*scale) px on the exact grid of the pair's true scale (HR
    pixel k at LR coordinate (k + 0.5)/scale - 0.5 from the crop's edge, the models'
    convention), so a calibrated 2.4954 works like a nominal 2.5.

    Returns (lr_patch, hr_patch, (row0, col0) of the crop in the LR frame). Dtypes follow the
    camera frames.
    """
    m = round(side * scale)  # any scale: HR pixel k sits at LR (k + 0.5)/scale - 0.5
    h, w = lr.shape[:2]
    hh, hw = hr.shape[:2]
    cx = (w - 1) / 2.0 + reg.dx_lr
    cy = (h - 1) / 2.0 + reg.dy_lr
    c0 = int(round(cx - (side - 1) / 2.0))
    r0 = int(round(cy - (side - 1) / 2.0))
    if r0 < 0 or c0 < 0 or r0 + side > h or c0 + side > w:
        raise RegistrationError("the patch would extend beyond the LR frame")
    lr_patch = np.ascontiguousarray(lr[r0:r0 + side, c0:c0 + side])
    k = (np.arange(m, dtype=np.float64) + 0.5) / scale - 0.5  # LR coords of HR-grid centres
    yy, xx = np.meshgrid(r0 + k - cy, c0 + k - cx, indexing="ij")
    r = _rot(-math.radians(reg.rotation_deg))
    tx = r[0, 0] * xx + r[0, 1] * yy
    ty = r[1, 0] * xx + r[1, 1] * yy
    coords = np.array([(hh - 1) / 2.0 + ty * scale, (hw - 1) / 2.0 + tx * scale])
    margin_ok = (coords[0].min() >= -0.5 and coords[0].max() <= hh - 0.5
                 and coords[1].min() >= -0.5 and coords[1].max() <= hw - 0.5)
    if not margin_ok:
        raise RegistrationError("the patch extends beyond the HR field")
    chans = [hr] if hr.ndim == 2 else [hr[..., ch] for ch in range(hr.shape[2])]
    out = [ndimage.map_coordinates(c.astype(np.float32), coords, order=3, mode="nearest")
           for c in chans]
    hr_patch = out[0] if hr.ndim == 2 else np.stack(out, axis=-1)
    if np.issubdtype(hr.dtype, np.integer):
        info = np.iinfo(hr.dtype)
        hr_patch = np.clip(np.rint(hr_patch), info.min, info.max)
    return lr_patch, hr_patch.astype(hr.dtype), (r0, c0)
