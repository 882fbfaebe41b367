"""Objective calibration by image registration (no Qt; runs in a worker).

Measures, against the reference objective (the first in the turret, 10x):
pixel size (a known stage step versus the measured image shift), parfocal Z (autofocus
on each objective) and parcentric XY + rotation (each objective's field registered inside
the previous, lower-magnification field with thinkscope_gui.pairs.register).
Offsets follow docs/CONTRACTS.md: the objective's field centre sees the specimen point
``stage + offset``, so offset = previous offset + measured centre shift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from skimage.registration import phase_cross_correlation

from thinkscope_gui.pairs.autofocus import AutofocusCancelled, autofocus
from thinkscope_gui.pairs.plan import AutofocusSettings
from thinkscope_gui.pairs.registration import register, to_gray


class CalibrationCancelled(Exception):
    """The operator stopped the calibration; nothing was changed."""


@dataclass(frozen=True)
class CalibrationResult:
    """Measured values per objective label and the profiles updated with them."""

    pixel_size_um: dict[str, float]
    offset_xy_um: dict[str, tuple[float, float]]
    parfocal_z_um: dict[str, float]
    rotation_deg: dict[str, float]
    profiles: dict[str, Any]


def measure_pixel_size(scope: Any, step_fraction: float = 0.25) -> float:
    """Move the stage by a known step and measure the image shift (phase correlation)."""
    h, w = scope.image_shape()
    p0 = scope.pixel_size_um()
    d = step_fraction * w * p0
    x, y = scope.xy()
    a = to_gray(scope.snap())
    scope.set_xy(x + d, y)
    try:
        b = to_gray(scope.snap())
    finally:
        scope.set_xy(x, y)
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=20)
    # moving the stage by +d shifts content by -d/p columns: b(c) = a(c + d/p)
    cols = float(shift[1])
    if abs(cols) < 1:
        raise RuntimeError("no image shift measured; is there structure in the field?")
    return abs(d / cols)


def calibrate(scope: Any, *, confirm_oil_to_dry: bool, cancelled: Callable[[], bool],
              progress: Callable[[str], None] = lambda _m: None,
              af: AutofocusSettings | None = None) -> CalibrationResult:
    """Calibrate every non-retired objective against the first one; restores the start state."""
    af = af or AutofocusSettings(search_range_um=20.0)
    profiles = dict(scope.profiles)
    labels = [lb for lb in scope.objectives() if not profiles[lb].retired]
    ref = labels[0]
    start_obj, start_xy = scope.objective(), scope.xy()

    def check() -> None:
        if cancelled():
            raise CalibrationCancelled()

    def go(label: str) -> None:
        check()
        progress(f"objective {label}")
        scope.set_objective(label, confirm_oil_to_dry=confirm_oil_to_dry, apply_offsets=False)
        scope.set_xy(*start_xy)

    def focus() -> float:
        try:
            return autofocus(scope, af, cancel=cancelled).z
        except AutofocusCancelled as exc:
            raise CalibrationCancelled() from exc

    pix: dict[str, float] = {}
    off: dict[str, tuple[float, float]] = {}
    parf: dict[str, float] = {}
    rot: dict[str, float] = {}
    # dry objectives first, oil last (the stand's safety rule); each objective is
    # registered inside the previous one (10x->40x->100x): modest scale factors keep the
    # field large enough in the lower-magnification frame to measure rotation
    order = [ref] + sorted(labels[1:], key=lambda lb: (profiles[lb].immersion == "oil",
                                                       profiles[lb].magnification))
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
                off[label] = tuple(profiles[ref].offset_xy_um)  # type: ignore[assignment]
                parf[label] = profiles[ref].parfocal_z_um
                rot[label] = profiles[ref].rotation_deg
            else:
                check()
                progress(f"{label}: registration in {prev}")
                scale = pix[prev] / pix[label]
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
    new = dict(profiles)
    for label in order:
        new[label] = profiles[label].model_copy(update={
            "pixel_size_um": round(pix[label], 6),
            "offset_xy_um": (round(off[label][0], 3), round(off[label][1], 3)),
            "parfocal_z_um": round(parf[label], 3),
            "rotation_deg": round(rot[label], 4),
        })
    return CalibrationResult(pix, off, parf, rot, new)
