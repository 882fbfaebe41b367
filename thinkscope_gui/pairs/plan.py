"""What to acquire: the validated, serialisable acquisition plan.

A plan is plain data (pydantic, saved as JSON next to the pairs and inside the HDF5 file)
so a run can be reproduced, resumed and audited. ``validate_against`` refuses plans the
microscope cannot carry out *before* anything moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PlanError(ValueError):
    """The plan cannot be carried out on this microscope; the message says why."""


class AutofocusSettings(BaseModel):
    """Software autofocus: coarse-to-fine Z search on an image sharpness metric."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    enabled: bool = True
    """Autofocus every tile; when False the focus map / current Z is used as is."""
    metric: Literal["normalized_variance", "brenner", "tenengrad"] = "brenner"
    """Sharpness metric evaluated on the central ROI (gray level)."""
    roi_fraction: float = Field(0.9, gt=0.05, le=1.0)
    """Side of the central ROI as a fraction of the frame; the centre is what the HR sees."""
    search_range_um: float = Field(12.0, gt=0)
    """Half-range of the first (unseeded) search around the starting Z, in µm."""
    coarse_step_um: float = Field(1.5, gt=0)
    """Step of the coarse scan in µm (must be below the width of the metric's peak)."""
    fine_step_um: float = Field(0.25, gt=0)
    """Step of the fine scan around the coarse maximum, in µm."""
    seeded_range_um: float = Field(0.5, gt=0)
    """Step of the 3-frame scan around a focus-map prediction (fast seeded tiles), µm."""
    min_seed_tiles: int = Field(3, ge=1)
    """Measured tiles needed before the focus map (a plane) seeds later tiles."""


class QualityGates(BaseModel):
    """Acceptance tests for a pair; rejected pairs are still stored with the reason."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    min_correlation: float = Field(0.6, ge=-1, le=1)
    """Minimum normalised cross-correlation of the HR (downsampled) against the LR field."""
    min_focus: float = Field(0.0, ge=0)
    """Minimum focus metric value of both frames (0 disables the absolute test)."""
    max_saturated_fraction: float = Field(0.01, ge=0, le=1)
    """Maximum fraction of saturated pixels in either frame."""
    max_offset_um: float = Field(25.0, gt=0)
    """Maximum distance between the HR centre and the LR centre after registration."""


@dataclass(frozen=True)
class Tile:
    """One planned tile: grid indices and the LR stage position (µm)."""

    index: int
    ix: int
    iy: int
    x: float
    y: float


class AcquisitionPlan(BaseModel):
    """A matched-pair acquisition: where, with which objectives, and how."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    center_um: tuple[float, float] = (5000.0, 0.0)
    """Centre of the tile grid on the slide in µm (default: epithelium, on tissue)."""
    grid: tuple[int, int] = (4, 4)
    """Number of tiles (nx, ny) around ``center_um``; used when neither rectangle nor
    positions is given."""
    rectangle_um: tuple[float, float, float, float] | None = None
    """Alternative region: (xmin, xmax, ymin, ymax) µm, covered by tiles."""
    positions_um: list[tuple[float, float]] | None = None
    """Alternative region: explicit LR stage positions in µm (one tile each)."""
    overlap: float = Field(0.0, ge=0.0, lt=0.9)
    """Fractional overlap between neighbouring *HR* fields (the part that becomes pairs)."""
    lr_objective: str = "40x"
    """Turret label of the low-resolution (input) objective."""
    hr_objective: str = "100x"
    """Turret label of the high-resolution (target) objective."""
    lr_exposure_ms: float = Field(10.0, gt=0)
    """Camera exposure for the LR objective in ms."""
    hr_exposure_ms: float = Field(10.0, gt=0)
    """Camera exposure for the HR objective in ms."""
    autofocus: AutofocusSettings = Field(default_factory=AutofocusSettings)
    """Autofocus settings, shared by both objectives."""
    gates: QualityGates = Field(default_factory=QualityGates)
    """Quality gates deciding accepted/rejected."""
    output: str = "pairs.h5"
    """Path of the HDF5 pair store."""
    skip_empty: bool = True
    """Skip the HR visit of LR tiles that show only glass (stored as rejected 'no tissue')."""
    patch_lr_px: int | None = None
    """LR patch side in px (even); None = largest that fits the HR field. The HR patch is
    round(side*scale) px on the exact HR grid, at any scale."""
    estimate_rotation: bool = True
    """Measure the LR/HR rotation by registration on the first (most textured) HR tile and
    hold it for the rest; False: use the profiles' rotation difference."""

    @model_validator(mode="after")
    def _check(self) -> AcquisitionPlan:
        if self.grid[0] < 1 or self.grid[1] < 1:
            raise ValueError("grid must be at least 1x1")
        if self.rectangle_um is not None:
            x0, x1, y0, y1 = self.rectangle_um
            if x1 <= x0 or y1 <= y0:
                raise ValueError("rectangle_um must be (xmin, xmax, ymin, ymax) with max > min")
        if self.positions_um is not None and not self.positions_um:
            raise ValueError("positions_um is empty")
        if self.patch_lr_px is not None and (self.patch_lr_px < 8 or self.patch_lr_px % 2):
            raise ValueError("patch_lr_px must be even and >= 8")
        return self

    # --- persistence -------------------------------------------------------------------
    def to_json(self) -> str:
        """JSON text of the plan (stored in the HDF5 root attributes)."""
        return self.model_dump_json(indent=2)

    def save(self, path: str | Path) -> Path:
        """Write the plan as JSON, so the run can be repeated or resumed."""
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> AcquisitionPlan:
        """Read a plan written by :meth:`save` (validated)."""
        return cls.model_validate_json(Path(path).read_text())

    # --- geometry ----------------------------------------------------------------------
    def tiles(self, hr_field_um: tuple[float, float]) -> list[Tile]:
        """LR stage positions in serpentine order (short moves), with grid indices.

        Tiles step by the HR field (minus overlap) because only the HR field becomes pairs.
        """
        if self.positions_um is not None:
            return [Tile(i, i, 0, float(x), float(y)) for i, (x, y) in enumerate(self.positions_um)]
        sx = hr_field_um[0] * (1.0 - self.overlap)
        sy = hr_field_um[1] * (1.0 - self.overlap)
        if self.rectangle_um is not None:
            x0, x1, y0, y1 = self.rectangle_um
            nx = max(1, math.ceil((x1 - x0 - hr_field_um[0]) / sx) + 1)
            ny = max(1, math.ceil((y1 - y0 - hr_field_um[1]) / sy) + 1)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        else:
            nx, ny = self.grid
            cx, cy = self.center_um
        out: list[Tile] = []
        for iy in range(ny):
            cols = range(nx) if iy % 2 == 0 else range(nx - 1, -1, -1)
            for ix in cols:
                x = cx + (ix - (nx - 1) / 2) * sx
                y = cy + (iy - (ny - 1) / 2) * sy
                out.append(Tile(len(out), ix, iy, x, y))
        return out

    def validate_against(self, scope: Any) -> None:
        """Refuse a plan this microscope cannot do; raises PlanError with the reason."""
        labels = list(scope.objectives())
        roles = (("lr_objective", self.lr_objective), ("hr_objective", self.hr_objective))
        for role, label in roles:
            if label not in labels:
                raise PlanError(f"unknown objective {label!r} for {role}; the turret has {labels}")
        if self.lr_objective == self.hr_objective:
            raise PlanError(f"lr_objective and hr_objective are both {self.lr_objective!r}")
        lr, hr = scope.profile(self.lr_objective), scope.profile(self.hr_objective)
        if lr.immersion == "oil" and hr.immersion != "oil":
            raise PlanError("the LR objective is oil and the HR objective dry: dry work must "
                            "come before oil; swap the roles or use a dry LR objective")
        safe_z = getattr(scope, "safe_z", None)  # the swap needs it: refuse now, not mid-run
        if safe_z is not None:
            try:
                safe_z()
            except Exception as exc:  # noqa: BLE001 - SafetyError, whose text says the fix
                raise PlanError(str(exc)) from exc
        scale = lr.pixel_size_um / hr.pixel_size_um
        h, w = scope.image_shape()
        lr_field = (w * lr.pixel_size_um, h * lr.pixel_size_um)
        hr_field = (w * hr.pixel_size_um, h * hr.pixel_size_um)
        dx = abs(hr.offset_xy_um[0] - lr.offset_xy_um[0])
        dy = abs(hr.offset_xy_um[1] - lr.offset_xy_um[1])
        if scale <= 1.0 or hr_field[0] >= lr_field[0] or hr_field[1] >= lr_field[1]:
            raise PlanError(
                f"the HR field ({hr_field[0]:.1f} x {hr_field[1]:.1f} µm, {self.hr_objective}) "
                f"does not fit inside the LR field ({lr_field[0]:.1f} x {lr_field[1]:.1f} µm, "
                f"{self.lr_objective}); the HR objective must have the smaller pixel size")
        patch = choose_patch_px(hr_field, lr.pixel_size_um, scale, self.patch_lr_px)
        if patch is None:
            raise PlanError(f"patch_lr_px={self.patch_lr_px} does not fit inside the HR field "
                            f"({min(hr_field):.1f} µm = {min(hr_field) / lr.pixel_size_um:.0f} "
                            f"LR px less a margin) or is odd")
        xmin, xmax, ymin, ymax = scope.stage_limits()
        for t in self.tiles(hr_field):
            for x, y in ((t.x, t.y), (t.x + dx, t.y + dy), (t.x - dx, t.y - dy)):
                if not (xmin <= x <= xmax and ymin <= y <= ymax):
                    raise PlanError(
                        f"tile ({t.ix},{t.iy}) at ({x:.1f}, {y:.1f}) µm is outside the stage "
                        f"limits x[{xmin:g}, {xmax:g}] y[{ymin:g}, {ymax:g}]")


def integral_scale_side(side: int, scale: float) -> bool:
    """True when ``side * scale`` is (numerically) an integer (the HR patch then ends
    exactly on the LR patch's edge; not required: any scale works)."""
    v = side * scale
    return abs(v - round(v)) < 1e-6


def choose_patch_px(hr_field_um: tuple[float, float], lr_pixel_um: float, scale: float,
                    requested: int | None = None, margin_px: int = 8) -> int | None:
    """LR patch side: even and inside the HR field with a margin (for rotation and
    residual offsets). None if the request cannot be met.

    Any scale works (a calibrated 2.4954 as well as 2.5): the HR patch is resampled onto
    the exact HR grid of round(side*scale) px, so side*scale need not be an integer. Among
    the largest sides (within 8 px) an integral side*scale is still preferred, because
    then the HR patch covers exactly the LR patch."""
    limit = int(min(hr_field_um) / lr_pixel_um) - 2 * margin_px
    if requested is not None:
        ok = 8 <= requested <= limit and requested % 2 == 0
        return requested if ok else None
    top = limit - limit % 2
    if top < 8:
        return None
    for side in range(top, max(top - 8, 6), -2):
        if integral_scale_side(side, scale):
            return side
    return top
