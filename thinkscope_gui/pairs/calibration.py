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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hardware.profiles import ObjectiveProfile
from thinkscope_gui.jobs import Cancelled, FunctionJob, JobControl
from thinkscope_gui.pairs.autofocus import autofocus
from thinkscope_gui.pairs.plan import AutofocusSettings
from thinkscope_gui.pairs.registration import register, to_gray

if TYPE_CHECKING:
    from hardware.microscope import Microscope

__all__ = ["CalibrationError", "CalibrationResult", "calibrate",
           "calibration_job", "calibration_labels", "measure_pixel_size", "uncalibrated"]




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


def measure_pixel_size(scope: Microscope, step_fraction: float = 0.2) -> float:
    """Move the stage by known steps in x and in y and measure the image shifts.

    Why two: a camera image that does not follow the stage (a test pattern, a drifting
    specimen) gives some shift once, but not the same pixel size along both axes with
    the content moving along the stepped axis; that is refused instead of saved.
    """
    from skimage.registration import phase_cross_correlation

    h, w = scope.image_shape()
    p0 = scope.pixel_size_um()
    d = step_fraction * min(h, w) * p0
    x, y = scope.xy()
    a = to_gray(scope.snap())
    sizes = []
    try:
        for axis, (tx, ty) in enumerate(((x + d, y), (x, y + d))):
            scope.set_xy(tx, ty)
            b = to_gray(scope.snap())
            shift, _, _ = phase_cross_correlation(a, b, upsample_factor=20)
            # moving the stage by +d shifts content by -d/p: b(c) = a(c + d/p)
            along, across = float(shift[1 - axis]), float(shift[axis])
            if abs(along) < 1 or abs(across) > 0.1 * abs(along) + 1:
                raise CalibrationError(
                    f"no clean image shift after a {d:.1f} µm stage step in "
                    f"{'xy'[axis]} on {scope.objective()} (measured {along:+.1f} px along, "
                    f"{across:+.1f} px across): is there structure in the field, and does "
                    "the camera image follow the stage?")
            sizes.append(abs(d / along))
    finally:
        scope.set_xy(x, y)
    if abs(sizes[0] - sizes[1]) > 0.03 * max(sizes):
        raise CalibrationError(
            f"pixel size differs between x ({sizes[0]:.5g} µm/px) and y ({sizes[1]:.5g} "
            f"µm/px) on {scope.objective()}: the image does not follow the stage steadily")
    return float(np.mean(sizes))


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
    prev, prev_img, z_prev = ref, np.zeros(0), 0.0
    try:
        for label in order:
            go(label)
            z = focus()
            check()
            progress(f"{label}: pixel size")
            pix[label] = measure_pixel_size(scope)
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
                hint = profiles[label].rotation_deg - profiles[prev].rotation_deg
                reg = register(prev_img, img, scale, hint)
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
