"""Software autofocus and the focus map that makes later tiles fast.

Why software autofocus: bright-field stands rarely have a hardware focus lock, and the
objective swap changes focus by the parfocal error. A coarse-to-fine Z scan on a sharpness
metric of the central ROI (what the HR field will see) is robust and needs only
``set_z``/``snap``. The FocusMap fits a plane through measured tiles (the slide is tilted),
so later tiles only scan a narrow range around the prediction.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from thinkscope_gui.jobs import Cancelled, FunctionJob, JobControl

from .plan import AutofocusSettings

if TYPE_CHECKING:
    from hardware.microscope import Microscope



@dataclass(frozen=True)
class AutofocusResult:
    """Best focus found: z (µm), its metric value, number of frames used, whether the peak
    lay inside the scanned range (False = probably not focused), and the scanned curve."""

    z: float
    score: float
    evaluations: int
    interior: bool = True
    curve: tuple[tuple[float, float], ...] = ()
    from_prediction: bool = False
    """True when no peak was found and z is the focus-map prediction instead."""


def _roi(gray: np.ndarray, fraction: float) -> np.ndarray:
    h, w = gray.shape
    rh, rw = max(8, int(h * fraction)), max(8, int(w * fraction))
    r0, c0 = (h - rh) // 2, (w - rw) // 2
    return gray[r0:r0 + rh, c0:c0 + rw]


def focus_metric(img: np.ndarray, metric: str = "normalized_variance",
                 roi_fraction: float = 0.5) -> float:
    """Sharpness of the central ROI; normalised by the mean so exposure does not matter."""
    a = np.asarray(img, dtype=np.float64)
    g = a.mean(axis=2) if a.ndim == 3 else a
    g = _roi(g, roi_fraction)
    mean = float(g.mean())
    if mean <= 0:
        return 0.0
    if metric == "normalized_variance":
        return float(g.var() / mean)
    if metric == "brenner":
        d = g[:, 2:] - g[:, :-2]
        return float((d * d).mean() / (mean * mean))
    if metric == "tenengrad":
        gx = ndimage.sobel(g, axis=1)
        gy = ndimage.sobel(g, axis=0)
        return float((gx * gx + gy * gy).mean() / (mean * mean))
    raise ValueError(f"unknown focus metric {metric!r}")


def _camera_roi(scope: Microscope, fraction: float) -> contextlib.AbstractContextManager[Any]:
    """The facade's central hardware ROI when it helps and the camera has one, else nothing.

    Why: the metric only looks at the central ``fraction`` of the frame; reading out just
    that region is faster on real cameras and renders proportionally faster in the
    simulator. The region equals ``_roi``'s crop, so the scores are the same.
    """
    if fraction >= 1.0 or not hasattr(scope, "roi_region"):
        return contextlib.nullcontext()
    is_live = getattr(scope, "is_live", None)
    supports = getattr(scope, "supports_roi", None)
    if (is_live is not None and is_live()) or supports is None or not supports():
        return contextlib.nullcontext()
    return scope.roi_region(fraction)


def _scan(zs: np.ndarray, evaluate: Callable[[float], float],
          cache: dict[float, float]) -> None:
    for z in zs:
        key = round(float(z), 4)
        if key not in cache:
            cache[key] = evaluate(key)


def autofocus(scope: Microscope, settings: AutofocusSettings, z_guess: float | None = None,
              on_progress: Callable[[int, float, float], None] | None = None, *,
              half_range_um: float | None = None,
              cancel: Callable[[], bool] | None = None) -> AutofocusResult:
    """Coarse-to-fine Z search; leaves the stage at the best z and returns it.

    Unseeded: a coarse scan over ``search_range_um`` (extended while the maximum sits on its
    edge), then a fine scan. Seeded (``half_range_um`` given, from the focus map): three
    frames at z_guess and +-half_range_um, stepping on while the maximum is on an edge.
    Both end with a Gaussian fit through the best frame and its neighbours.
    ``on_progress(n, z, score)`` is called per frame; ``cancel()`` returning True raises
    :class:`thinkscope_gui.jobs.Cancelled` (the one cancellation exception).
    """
    z0 = float(scope.z() if z_guess is None else z_guess)
    zmin, zmax = scope.z_limits()
    rng = float(half_range_um if half_range_um is not None else settings.search_range_um)
    fine = settings.fine_step_um
    coarse = min(settings.coarse_step_um, max(fine, rng / 2.0))
    coarse = max(fine, fine * round(coarse / fine))  # fine points then reuse coarse ones
    cache: dict[float, float] = {}
    roi_fraction = settings.roi_fraction  # becomes 1.0 while the camera reads out the ROI

    def evaluate(z: float) -> float:
        if cancel is not None and cancel():
            raise Cancelled("autofocus cancelled")
        scope.set_z(z)
        score = focus_metric(scope.snap(), settings.metric, roi_fraction)
        if on_progress is not None:
            on_progress(len(cache) + 1, z, score)
        return score

    with _camera_roi(scope, settings.roi_fraction) as region:
        if region is not None:
            roi_fraction = 1.0
        _search(z0, zmin, zmax, rng, fine, coarse, half_range_um is not None,
                evaluate, cache)
    return _finish(scope, cache)


def _search(z0: float, zmin: float, zmax: float, rng: float, fine: float,
            coarse: float, seeded: bool, evaluate: Callable[[float], float],
            cache: dict[float, float]) -> None:
    """Fill ``cache`` (z -> score) with the frames of the coarse-to-fine search."""

    def clip(zs: np.ndarray) -> np.ndarray:
        return np.unique(np.clip(zs, zmin, zmax))

    if seeded:
        # seeded: three frames bracket the predicted focus; walk one step at a time while
        # the maximum sits on an edge; the Gaussian fit below does the fine work
        _scan(clip(z0 + rng * np.arange(-1, 2)), evaluate, cache)
        for _ in range(8):
            zs = sorted(cache)
            best = max(zs, key=cache.__getitem__)
            if best == zs[0] and zs[0] > zmin:
                _scan(clip(np.array([zs[0] - rng])), evaluate, cache)
            elif best == zs[-1] and zs[-1] < zmax:
                _scan(clip(np.array([zs[-1] + rng])), evaluate, cache)
            else:
                break
    else:
        _scan(clip(np.arange(z0 - rng, z0 + rng + coarse / 2, coarse)), evaluate, cache)
        for _ in range(3):  # walk towards a maximum sitting on the scan edge
            zs = sorted(cache)
            best = max(zs, key=cache.__getitem__)
            if best == zs[0] and zs[0] > zmin:
                lo = zs[0] - 2 * rng
                _scan(clip(np.arange(zs[0] - coarse, lo - coarse / 2, -coarse)), evaluate,
                      cache)
            elif best == zs[-1] and zs[-1] < zmax:
                hi = zs[-1] + 2 * rng
                _scan(clip(np.arange(zs[-1] + coarse, hi + coarse / 2, coarse)), evaluate,
                      cache)
            else:
                break
        best = max(cache, key=cache.__getitem__)
        if fine < coarse:
            n = int(round(coarse / fine))
            _scan(clip(best + fine * np.arange(-n + 1, n)), evaluate, cache)


def _finish(scope: Microscope, cache: dict[float, float]) -> AutofocusResult:
    """Gaussian peak through the best frame; leaves the stage there."""
    zs = np.array(sorted(cache))
    scores = np.array([cache[z] for z in zs])
    i = int(np.argmax(scores))
    interior = 0 < i < len(zs) - 1
    z_best = float(zs[i])
    if interior:
        # Gaussian peak (parabola on log score) through the maximum and its neighbours
        y = np.log(np.maximum(scores[i - 1:i + 2], 1e-300))
        x = zs[i - 1:i + 2]
        a, b, _c = np.polyfit(x - x[1], y, 2)
        if a < 0:
            z_best = float(np.clip(x[1] - b / (2 * a), x[0], x[2]))
    scope.set_z(z_best)
    curve = tuple((float(z), float(cache[z])) for z in zs)
    return AutofocusResult(z_best, float(scores[i]), len(cache), interior, curve)


@dataclass
class FocusMap:
    """Measured focus positions -> predicted z anywhere (plane fit; mean until enough).

    Why: the slide is tilted, so a plane through a few tiles predicts the rest well enough
    for a narrow, fast search.
    """

    min_points_for_plane: int = 3
    points: list[tuple[float, float, float]] = field(default_factory=list)

    def add(self, x: float, y: float, z: float) -> None:
        """Record a measured in-focus z at stage (x, y)."""
        self.points.append((float(x), float(y), float(z)))

    def __len__(self) -> int:
        return len(self.points)

    def _coeffs(self) -> np.ndarray | None:
        if len(self.points) < self.min_points_for_plane:
            return None
        p = np.asarray(self.points)
        a = np.column_stack([np.ones(len(p)), p[:, 0] - p[0, 0], p[:, 1] - p[0, 1]])
        if np.linalg.matrix_rank(a) < 3:
            return None
        return np.linalg.lstsq(a, p[:, 2], rcond=None)[0]

    def predict(self, x: float, y: float) -> float | None:
        """Predicted in-focus z at (x, y); None before any measurement."""
        if not self.points:
            return None
        c = self._coeffs()
        if c is None:
            # nearest measured tile: robust with one or two collinear points
            p = min(self.points, key=lambda q: math.hypot(q[0] - x, q[1] - y))
            return p[2]
        x0, y0 = self.points[0][:2]
        return float(c[0] + c[1] * (x - x0) + c[2] * (y - y0))

    def residual_um(self) -> float:
        """RMS misfit of the plane (0 before a plane is fitted): widens the seeded range."""
        c = self._coeffs()
        if c is None:
            return 0.0
        p = np.asarray(self.points)
        x0, y0 = self.points[0][:2]
        pred = c[0] + c[1] * (p[:, 0] - x0) + c[2] * (p[:, 1] - y0)
        return float(np.sqrt(np.mean((pred - p[:, 2]) ** 2)))


def autofocus_job(scope: Microscope, settings: AutofocusSettings,
                  z_seed: float | None = None) -> FunctionJob:
    """Autofocus as a job of the runner: it holds the stand and stops on cancel; the
    :class:`AutofocusResult` is the job's ``result``."""

    def body(ctl: JobControl) -> AutofocusResult:
        ctl.progress(0, 1, phase="focus")
        res = autofocus(scope, settings, z_seed, cancel=lambda: ctl.cancel_requested)
        ctl.progress(1, 1, message=f"focus at z = {res.z:.2f} µm")
        return res

    return FunctionJob("autofocus", body, scope=scope, needs_stand=True)
