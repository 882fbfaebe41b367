"""Acquisition plan (geometry, JSON, refusal of impossible plans) and software autofocus."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from thinkscope_gui.pairs.autofocus import FocusMap, autofocus, focus_metric
from thinkscope_gui.pairs.plan import (
    AcquisitionPlan,
    AutofocusSettings,
    PlanError,
    choose_patch_px,
    integral_scale_side,
)


def _prof(label: str, px: float, imm: str = "dry", off: tuple[float, float] = (0.0, 0.0)):
    return SimpleNamespace(label=label, pixel_size_um=px, immersion=imm, offset_xy_um=off,
                           parfocal_z_um=0.0, rotation_deg=0.0)


class FakeScope:
    """Just what plan validation and autofocus need: a turret, limits, and a blurry camera."""

    def __init__(self, z_focus: float = 3.3, shape: tuple[int, int] = (64, 64)) -> None:
        self.profiles = {"10x": _prof("10x", 0.65), "40x": _prof("40x", 0.1625),
                         "100x": _prof("100x", 0.065, "oil"), "63x": _prof("63x", 0.1625)}
        self._z = 0.0
        self.z_focus = z_focus
        self.snaps = 0
        self._shape = shape
        self._tex = np.random.default_rng(0).random(shape) * 200 + 20

    def objectives(self) -> list[str]:
        return list(self.profiles)

    def profile(self, label: str | None = None):
        return self.profiles[label or "40x"]

    def image_shape(self) -> tuple[int, int]:
        return self._shape

    def stage_limits(self) -> tuple[float, float, float, float]:
        return (-1000.0, 1000.0, -1000.0, 1000.0)

    def z_limits(self) -> tuple[float, float]:
        return (-100.0, 100.0)

    def z(self) -> float:
        return self._z

    def set_z(self, z: float) -> None:
        self._z = float(z)

    def snap(self) -> np.ndarray:
        self.snaps += 1
        sigma = 0.3 + 2.0 * abs(self._z - self.z_focus)
        return ndimage.gaussian_filter(self._tex, sigma)


def test_plan_json_roundtrip_and_grid(tmp_path: Path) -> None:
    plan = AcquisitionPlan(center_um=(100.0, -50.0), grid=(3, 2), overlap=0.1)
    p = plan.save(tmp_path / "plan.json")
    again = AcquisitionPlan.load(p)
    assert again == plan
    assert json.loads(p.read_text())["lr_objective"] == "40x"
    tiles = plan.tiles((10.0, 10.0))
    assert len(tiles) == 6
    assert {(t.ix, t.iy) for t in tiles} == {(i, j) for i in range(3) for j in range(2)}
    xs = sorted({round(t.x, 6) for t in tiles})
    assert xs == pytest.approx([91.0, 100.0, 109.0])  # step = field * (1 - overlap)
    assert [t.ix for t in tiles] == [0, 1, 2, 2, 1, 0]  # serpentine
    assert AcquisitionPlan().center_um == (5000.0, 0.0)  # on tissue (epithelium)


def test_plan_other_regions() -> None:
    rect = AcquisitionPlan(rectangle_um=(0.0, 30.0, 0.0, 10.0))
    tiles = rect.tiles((10.0, 10.0))
    assert len(tiles) == 3 and min(t.x for t in tiles) == pytest.approx(5.0)
    pos = AcquisitionPlan(positions_um=[(1.0, 2.0), (3.0, 4.0)])
    assert [(t.x, t.y) for t in pos.tiles((10.0, 10.0))] == [(1.0, 2.0), (3.0, 4.0)]
    with pytest.raises(ValueError):
        AcquisitionPlan(patch_lr_px=33)


def test_validate_refuses_impossible_plans() -> None:
    scope = FakeScope()
    AcquisitionPlan(center_um=(0.0, 0.0), grid=(2, 2)).validate_against(scope)
    with pytest.raises(PlanError, match="stage limits"):
        AcquisitionPlan(center_um=(999.0, 0.0), grid=(2, 2)).validate_against(scope)
    with pytest.raises(PlanError, match="unknown objective '60x'"):
        AcquisitionPlan(center_um=(0.0, 0.0), hr_objective="60x").validate_against(scope)
    with pytest.raises(PlanError, match="both"):
        AcquisitionPlan(center_um=(0.0, 0.0), hr_objective="40x").validate_against(scope)
    with pytest.raises(PlanError, match="does not fit inside the LR field"):
        AcquisitionPlan(center_um=(0.0, 0.0), lr_objective="40x",
                        hr_objective="10x").validate_against(scope)
    with pytest.raises(PlanError, match="does not fit inside the LR field"):
        AcquisitionPlan(center_um=(0.0, 0.0), lr_objective="40x",
                        hr_objective="63x").validate_against(scope)
    with pytest.raises(PlanError, match="patch_lr_px"):
        AcquisitionPlan(center_um=(0.0, 0.0), patch_lr_px=40).validate_against(scope)


def test_patch_size_is_even_integral_and_fits() -> None:
    side = choose_patch_px((66.56, 66.56), 0.1625, 2.5)
    assert side is not None and side % 2 == 0 and integral_scale_side(side, 2.5)
    assert side * 0.1625 <= 66.56
    assert choose_patch_px((66.56, 66.56), 0.1625, 2.5, requested=385) is None
    assert choose_patch_px((66.56, 66.56), 0.1625, 2.5, requested=384) == 384


@pytest.mark.parametrize("metric", ["normalized_variance", "brenner", "tenengrad"])
def test_autofocus_finds_focus(metric: str) -> None:
    scope = FakeScope(z_focus=3.3)
    s = AutofocusSettings(metric=metric, search_range_um=8, coarse_step_um=1.0,
                          fine_step_um=0.2, roi_fraction=1.0)
    res = autofocus(scope, s, z_guess=0.0)
    assert res.interior
    assert abs(res.z - 3.3) < 0.15
    assert scope.z() == pytest.approx(res.z)
    assert res.evaluations == scope.snaps


def test_autofocus_walks_out_of_a_wrong_range_and_seeded_is_fast() -> None:
    scope = FakeScope(z_focus=9.0)
    s = AutofocusSettings(search_range_um=3, coarse_step_um=1.0, fine_step_um=0.2,
                          seeded_range_um=0.5)
    res = autofocus(scope, s, z_guess=0.0)
    assert abs(res.z - 9.0) < 0.15
    full = res.evaluations
    scope.snaps = 0
    res2 = autofocus(scope, s, z_guess=9.2, half_range_um=s.seeded_range_um)
    assert abs(res2.z - 9.0) < 0.15
    assert res2.evaluations == 3 < full  # a good prediction needs just three frames
    res3 = autofocus(scope, s, z_guess=7.6, half_range_um=s.seeded_range_um)
    assert abs(res3.z - 9.0) < 0.15  # a poor one walks to the peak


def test_autofocus_cancel_and_metric_sanity() -> None:
    scope = FakeScope()
    from thinkscope_gui.jobs import Cancelled

    with pytest.raises(Cancelled):
        autofocus(scope, AutofocusSettings(), cancel=lambda: True)
    sharp = scope._tex
    assert focus_metric(sharp) > focus_metric(ndimage.gaussian_filter(sharp, 2))


def test_focus_map_fits_the_tilt() -> None:
    fm = FocusMap()
    assert fm.predict(0, 0) is None
    fm.add(0, 0, 1.0)
    assert fm.predict(500, 500) == 1.0
    for x, y in [(100, 0), (0, 100), (100, 100)]:
        fm.add(x, y, 1.0 + 0.0005 * x - 0.0003 * y)
    assert fm.predict(1000, 1000) == pytest.approx(1.0 + 0.5 - 0.3)
    assert fm.residual_um() < 1e-9


def test_autofocus_reports_a_featureless_field_as_not_found() -> None:
    """No sharpness peak (z changes nothing): the result must not claim a focus."""

    class Flat(FakeScope):
        def snap(self) -> np.ndarray:
            self.snaps += 1
            return np.full(self._shape, 100.0)

    scope = Flat()
    res = autofocus(scope, AutofocusSettings(), z_guess=1.0, half_range_um=0.5)
    assert not res.interior

