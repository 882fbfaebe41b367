"""Autofocus while the live view runs: frames in flight during a Z move must not count."""

from __future__ import annotations

import pytest

from hardware import open_microscope
from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.slide import slide_surface_z
from thinkscope_gui.pairs.autofocus import autofocus
from thinkscope_gui.pairs.plan import AutofocusSettings


@pytest.mark.parametrize("start_offset_um", [0.0, -2.0])
def test_autofocus_during_live_view_finds_the_focal_plane(start_offset_um: float) -> None:
    with open_microscope("sim", sensor=(256, 256)) as scope:
        x, y = 5000.0, 0.0
        scope.set_xy(x, y)
        truth = slide_surface_z(x, y) + DEFAULT_SIM_OPTICS["40x"].true_parfocal_z_um
        scope.set_z(truth + start_offset_um)
        scope.start_live()
        try:
            result = autofocus(scope, AutofocusSettings())
        finally:
            scope.stop_live()
    # depth of field at 40x is ~0.7 µm; a stale frame per step shifts the peak by a step
    assert abs(result.z - truth) < 0.1, (result.z, truth)
