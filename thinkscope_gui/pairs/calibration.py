"""Objective calibration by image registration: a procedure on the stand (no Qt).

Measures, against the reference objective (the lowest-magnification dry objective):
pixel size (a known stage step versus the measured image shift), parfocal Z (autofocus
on each objective) and parcentric XY + rotation (each objective's field registered inside
the previous, lower-magnification field with :func:`register`).
Offsets follow docs/CONTRACTS.md: the objective's field centre sees the specimen point
``stage + offset``, so offset = previous offset + measured centre shift.

Used by ``main.py calibrate`` and by the GUI's Objectives panel (a thin Qt wrapper). The
stand ends where it started: objective, XY and focus.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from hardware.profiles import ObjectiveProfile
from thinkscope_gui.jobs import Cancelled, FunctionJob, JobControl
from thinkscope_gui.pairs.autofocus import autofocus
from thinkscope_gui.pairs.plan import AutofocusSettings

if TYPE_CHECKING:
    from hardware.microscope import Microscope

__all__ = ["CalibrationError", "CalibrationResult", "calibrate", "calibration_job",
           "calibration_labels", "measure_stage_map", "uncalibrated"]


class CalibrationError(RuntimeError):
    """The calibration cannot run or measure on this stand (the message says why)."""


@dataclass(frozen=True)
class CalibrationResult:
    """Measured values per objective label and the profiles updated with them."""

    pixel_size_um: dict[str, float]
    offset_xy_um: dict[str, tuple[float, float]]
    parfocal_z_um: dict[str, float]
    rotation_deg: dict[str, float]
    profiles: dict[str, ObjectiveProfile]
    reference: str = ""
    #: pixel size each objective's profile had before (to show the change)
    previous_pixel_size_um: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per objective: what was measured (for the CLI and the GUI)."""
        lines = []
        for label, ps in self.pixel_size_um.items():
            ox, oy = self.offset_xy_um[label]
            before = self.previous_pixel_size_um.get(label)
            change = (f" (was {before:.5g}, {100 * (ps - before) / before:+.2f} %)"
                      if before else "")
            ref = "  [reference]" if label == self.reference else ""
            lines.append(f"{label}: {ps:.5g} µm/px{change}, offset ({ox:+.3f}, {oy:+.3f}) µm, "
                         f"parfocal {self.parfocal_z_um[label]:+.3f} µm, "
                         f"rotation {self.rotation_deg[label]:+.3f}°{ref}")
        return "\n".join(lines)


def _shift_ready(img: np.ndarray) -> np.ndarray:
    """Gray image for shift measurement with the camera's own pattern suppressed.

    Why: real sensors have hot pixels, fixed-pattern noise, a bias and vignetting that do
    not move with the stage; whitened (phase) correlation weights them like specimen
    detail and finds a zero shift. A 3x3 median drops hot pixels, subtracting a wide blur
    removes bias and vignetting, and plain cross-correlation lets the specimen dominate.
    """
    from thinkscope_gui.pairs.registration import to_gray  # skimage: only when calibrating

    g = ndimage.median_filter(to_gray(img).astype(np.float32), 3)
    return g - ndimage.gaussian_filter(g, 16)


def _image_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(row, col) shift that registers ``b`` onto ``a`` (content moved by minus this).

    Plain cross-correlation finds the whole-pixel shift (the specimen dominates it); the
    sub-pixel part comes from phase correlation of the overlapping crops only, where the
    sensor's fixed pattern sits at different places in the two crops and cannot pull the
    peak to zero, and which is free of plain correlation's sub-pixel bias.
    """
    from skimage.registration import phase_cross_correlation

    coarse, _, _ = phase_cross_correlation(a, b, normalization=None)
    r, c = (int(round(float(v))) for v in coarse)
    h, w = a.shape
    ra, rb = slice(max(0, r), min(h, h + r)), slice(max(0, -r), min(h, h - r))
    ca, cb = slice(max(0, c), min(w, w + c)), slice(max(0, -c), min(w, w - c))
    from skimage.filters import window

    wa, wb = a[ra, ca], b[rb, cb]
    win = window("hann", wa.shape)  # the crops' edges coincide: keep them out of the peak
    fine, _, _ = phase_cross_correlation(wa * win, wb * win, upsample_factor=20)
    return np.array([r + float(fine[0]), c + float(fine[1])])


@dataclass(frozen=True)
class StageImageMap:
    """How the camera image follows the stage on one objective."""

    pixel_size_um: float
    #: angle of the stage x axis in the image (col = x, row = y), degrees: 0 for a camera
    #: aligned with the stage, about +-90 for one mounted turned a quarter
    camera_angle_deg: float


def measure_stage_map(scope: Microscope, step_fraction: float = 0.4,
                      steps: int = 5) -> StageImageMap:
    """Walk the stage in overlapping steps along x, then y, and add up the image shifts.

    Why a walk: a stage repeats a position only to a few tenths of a µm, which is several
    pixels on a 100x. Each step is measured between two frames taken at the *actual*
    positions, so the summed shift spans the actual travel of ``steps`` steps and the
    repeatability error counts once, over the whole travel, not once per step. Two axes
    also tell the camera's angle to the stage (a camera mounted turned by 90 degrees is
    common) and refuse an image that does not follow the stage, or a mirrored one.
    """
    h, w = scope.image_shape()
    p0 = scope.pixel_size_um()
    d = step_fraction * min(h, w) * p0
    x, y = scope.xy()
    vectors, travels = [], []
    try:
        for axis in (0, 1):
            scope.set_xy(x, y)
            start = _shift_ready(scope.snap())
            texture = float(start.std())
            total, done, first = np.zeros(2), 0, None
            for sign in (1, -1):  # away from the start, then (if glass came first) back past it
                prev = start
                for i in range(1, steps - done + 1):
                    off = sign * i * d
                    scope.set_xy(*((x + off, y) if axis == 0 else (x, y + off)))
                    cur = _shift_ready(scope.snap())
                    v = sign * _image_shift(prev, cur)  # as if stepped in the + direction
                    if cur.std() < 0.3 * texture:
                        break  # ran into glass: keep the steps so far
                    if first is None:
                        first = v
                    else:
                        # a step must look like the first one (repeatability: ~10 %, ~5°)
                        n1, nv = float(np.hypot(*first)), float(np.hypot(*v))
                        cos = float(np.dot(v, first)) / max(n1 * nv, 1e-9)
                        if abs(nv - n1) > 0.2 * n1 or cos < math.cos(math.radians(12.0)):
                            break
                    total += v
                    done += 1
                    prev = cur
                if done >= steps:
                    break
            if not done:
                raise CalibrationError(
                    f"no structure around the field on {scope.objective()} to follow a "
                    f"{d:.1f} µm stage step in {'xy'[axis]}: move to a field with tissue")
            # frames were always compared with the previous *actual* position, so the sum
            # spans the actual travel between the two ends of the walk
            vectors.append(total)
            travels.append(done * d)
    finally:
        scope.set_xy(x, y)
    (rx, cx), (ry, cy) = vectors
    lx, ly = math.hypot(rx, cx), math.hypot(ry, cy)
    if min(lx / travels[0], ly / travels[1]) * d < 1.0:  # under a pixel per step
        raise CalibrationError(
            f"no clean image shift after a {d:.1f} µm stage step on {scope.objective()} "
            f"(measured {lx:.1f} px in x, {ly:.1f} px in y, expected about {d / p0:.0f}): "
            "is there structure in the field, and does the camera image follow the stage?")
    px_x, px_y = travels[0] / lx, travels[1] / ly
    if abs(px_x - px_y) > 0.03 * max(px_x, px_y):
        raise CalibrationError(
            f"pixel size differs between x ({px_x:.5g} µm/px) and y ({px_y:.5g} µm/px) on "
            f"{scope.objective()}: the image does not follow the stage steadily")
    cross = cx * ry - rx * cy  # > 0: stage x -> y turns the same way as col -> row
    if cross <= 0:
        raise CalibrationError(
            f"the camera image on {scope.objective()} is mirrored relative to the stage: "
            "set the camera's mirror/transpose properties in the Micro-Manager configuration "
            "so that the image is a rotation of the stage axes")
    ax = math.degrees(math.atan2(rx, cx))
    ay = math.degrees(math.atan2(ry, cy)) - 90.0
    diff = (ay - ax + 180.0) % 360.0 - 180.0
    if abs(diff) > 5.0:
        raise CalibrationError(
            f"the stage x and y axes are {90 + diff:.1f}° apart in the image on "
            f"{scope.objective()}, not 90°: the image does not follow the stage")
    angle = ax + diff / 2.0
    return StageImageMap(pixel_size_um=float((travels[0] + travels[1]) / (lx + ly)),
                         camera_angle_deg=float((angle + 180.0) % 360.0 - 180.0))


def calibration_labels(scope: Microscope, objectives: Sequence[str] | None = None) -> list[str]:
    """The objectives a calibration visits, reference first, dry before oil.

    ``objectives`` selects some (the reference is always added); labels may be written in
    any case. Retired objectives (and empty turret positions) are left out.
    """
    profiles = scope.profiles
    active = [lb for lb in scope.objectives() if lb in profiles and not profiles[lb].retired]
    if not active:
        raise CalibrationError("no objective in the turret has an active profile")

    def key(lb: str) -> tuple[bool, float]:
        return profiles[lb].immersion == "oil", profiles[lb].magnification

    ref = min(active, key=key)
    if objectives:
        by_lower = {lb.lower(): lb for lb in active}
        chosen = []
        for name in objectives:
            lb = name if name in active else by_lower.get(name.strip().lower())
            if lb is None:
                raise CalibrationError(
                    f"objective {name!r} is not an active objective of this stand; "
                    f"choose from {active}")
            chosen.append(lb)
        active = [lb for lb in active if lb in chosen or lb == ref]
    # dry objectives first, oil last (the stand's safety rule); each objective is
    # registered inside the previous one (10x->40x->100x): modest scale factors keep the
    # field large enough in the lower-magnification frame to measure rotation
    return [ref] + sorted((lb for lb in active if lb != ref), key=key)


def uncalibrated(profiles: dict[str, ObjectiveProfile], labels: Sequence[str]) -> list[str]:
    """Active objectives that were never calibrated (no offsets measured relative to the
    reference), so a new user can be asked to calibrate."""
    active = [lb for lb in labels if lb in profiles and not profiles[lb].retired]
    if len(active) < 2:
        return []
    return [lb for lb in active
            if profiles[lb].offset_xy_um == (0.0, 0.0) and profiles[lb].parfocal_z_um == 0.0
            and profiles[lb].rotation_deg == 0.0
            and lb != min(active, key=lambda x: profiles[x].magnification)]


def calibrate(scope: Microscope, *, confirm_oil_to_dry: bool = False,
              cancelled: Callable[[], bool] = lambda: False,
              progress: Callable[[str], None] = lambda _m: None,
              af: AutofocusSettings | None = None,
              objectives: Sequence[str] | None = None) -> CalibrationResult:
    """Calibrate the chosen (default: every active) objective against the reference.

    The stand is restored afterwards, also on errors and cancellation: the starting
    objective (without offsets), stage XY and focus Z, so the operator sees the same,
    focused field as before.
    """
    from thinkscope_gui.pairs.registration import register  # skimage: imported when used

    af = af or AutofocusSettings(search_range_um=20.0)
    profiles = dict(scope.profiles)
    order = calibration_labels(scope, objectives)
    ref = order[0]
    start_obj, start_xy, start_z = scope.objective(), scope.xy(), scope.z()
    visited = [*order, start_obj]
    needs_oil_to_dry = (any(profiles[lb].immersion == "oil" for lb in visited)
                        and any(profiles[lb].immersion == "dry" for lb in visited))
    if needs_oil_to_dry and not confirm_oil_to_dry:
        raise CalibrationError(
            "the calibration goes from an oil objective back to a dry one "
            f"(it ends on {start_obj!r}): confirm that the slide may go from oil back to dry "
            "(--confirm-oil-to-dry), or leave the oil objective out (--objectives)")

    def check() -> None:
        if cancelled():
            raise Cancelled("calibration cancelled")

    def go(label: str) -> None:
        check()
        progress(f"objective {label}")
        scope.set_objective(label, confirm_oil_to_dry=confirm_oil_to_dry, apply_offsets=False)
        scope.set_xy(*start_xy)

    def focus() -> float:
        return autofocus(scope, af, cancel=cancelled).z

    pix: dict[str, float] = {}
    off: dict[str, tuple[float, float]] = {}
    parf: dict[str, float] = {}
    rot: dict[str, float] = {}
    cam: dict[str, float] = {}  # each camera's angle to the stage (the registration hint)
    prev, prev_img, z_prev = ref, np.zeros(0), 0.0
    try:
        for label in order:
            go(label)
            z = focus()
            check()
            progress(f"{label}: pixel size")
            smap = measure_stage_map(scope)
            pix[label], cam[label] = smap.pixel_size_um, smap.camera_angle_deg
            img = scope.snap()
            if label == ref:
                ox, oy = profiles[ref].offset_xy_um
                off[label] = (ox, oy)
                parf[label] = profiles[ref].parfocal_z_um
                rot[label] = profiles[ref].rotation_deg
            else:
                check()
                progress(f"{label}: registration in {prev}")
                scale = pix[prev] / pix[label]
                if scale < 1.2:
                    raise CalibrationError(
                        f"{label} measured {pix[label]:.4g} µm/px, {prev} {pix[prev]:.4g} "
                        f"µm/px (scale {scale:.3g}): the field must shrink with magnification "
                        "to register one inside the other. Does the camera image change with "
                        "the objective? (Micro-Manager's DemoCamera draws the same picture at "
                        "every magnification.)")
                # HR offsets land in the LR frame turned by the difference of the two
                # cameras' angles to the stage (see registration's convention)
                hint = (cam[prev] - cam[label] + 180.0) % 360.0 - 180.0
                reg = register(prev_img, img, scale, hint, angle_span_deg=3.0)
                px, py = off[prev]
                off[label] = (px + reg.dx_lr * pix[prev], py + reg.dy_lr * pix[prev])
                parf[label] = parf[prev] + (z - z_prev)
                rot[label] = rot[prev] + reg.rotation_deg
            prev, prev_img, z_prev = label, img, z
    finally:
        if scope.objective() != start_obj:
            scope.set_objective(start_obj, confirm_oil_to_dry=confirm_oil_to_dry,
                                apply_offsets=False)
        scope.set_xy(*start_xy)
        scope.set_z(start_z)
    new = dict(profiles)
    for label in order:
        new[label] = profiles[label].model_copy(update={
            "pixel_size_um": round(pix[label], 6),
            "offset_xy_um": (round(off[label][0], 3), round(off[label][1], 3)),
            "parfocal_z_um": round(parf[label], 3),
            "rotation_deg": round(rot[label], 4),
        })
    return CalibrationResult(pix, off, parf, rot, new, reference=ref,
                             previous_pixel_size_um={lb: profiles[lb].pixel_size_um
                                                     for lb in order})


def calibration_job(scope: Microscope, **kwargs: Any) -> FunctionJob:
    """:func:`calibrate` as a job of the runner: it holds the stand, reports each step as
    its phase and stops on cancel; the :class:`CalibrationResult` is the job's ``result``.
    ``kwargs`` go to :func:`calibrate`."""

    def body(ctl: JobControl) -> CalibrationResult:
        steps = [0]

        def progress(msg: str) -> None:
            steps[0] += 1
            ctl.progress(steps[0], phase=msg, message=msg)

        return calibrate(scope, cancelled=lambda: ctl.cancel_requested, progress=progress,
                         **kwargs)

    return FunctionJob("calibration", body, scope=scope, needs_stand=True)
