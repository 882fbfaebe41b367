"""Live path: focus changes and panning stay fast and converge to the exact snap physics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hardware.sim import slide
from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.render import SimRenderer

SHAPE = (200, 300)
OBJ = "40x"


def _stage_for_anchor(i0: int, j0: int, obj: str = OBJ) -> tuple[float, float]:
    """Stage position whose live frame has its top-left pixel exactly on lattice (i0, j0)."""
    opt = DEFAULT_SIM_OPTICS[obj]
    p, th = opt.pixel_size_um, math.radians(opt.true_rotation_deg)
    ic, jc = i0 + (SHAPE[0] - 1) / 2, j0 + (SHAPE[1] - 1) / 2
    cx = math.cos(th) * jc * p - math.sin(th) * ic * p
    cy = math.sin(th) * jc * p + math.cos(th) * ic * p
    return cx - opt.true_offset_xy_um[0], cy - opt.true_offset_xy_um[1]


def _focus(x: float, y: float) -> float:
    return slide.slide_surface_z(x, y) + DEFAULT_SIM_OPTICS[OBJ].true_parfocal_z_um


def _assert_matches_exact(r: SimRenderer, x: float, y: float, z: float) -> None:
    live = r.render_clean(x, y, z, OBJ, SHAPE, live=True)
    exact = r.render_clean(x, y, z, OBJ, SHAPE)
    assert exact.std() > 0.02 * exact.max()  # there is tissue to compare
    np.testing.assert_allclose(live, exact, atol=0.01 * exact.max())


@pytest.mark.parametrize("dz", [0.7, -1.5])
def test_live_focus_change_matches_exact(dz: float) -> None:
    r = SimRenderer()
    x, y = _stage_for_anchor(round(-900.0 / 0.1625), round(4200.0 / 0.1625))
    z = _focus(x, y)
    r.render(x, y, z, OBJ, SHAPE, live=True)
    r.render(x, y, z + dz, OBJ, SHAPE, live=True)  # z step, stage still: cached tile spectra
    assert r.live_settled
    _assert_matches_exact(r, x, y, z + dz)


def test_live_focus_change_after_snap_reuses_the_exact_spectrum() -> None:
    r = SimRenderer()
    x, y = _stage_for_anchor(round(-700.0 / 0.1625), round(3900.0 / 0.1625))
    z = _focus(x, y)
    snap = r.render_clean(x, y, z, OBJ, SHAPE)
    r.render(x, y, z, OBJ, SHAPE, live=True)
    assert snap.std() > 0.0
    live = r.render_clean(x, y, z + 0.9, OBJ, SHAPE, live=True)
    np.testing.assert_array_equal(live, r.render_clean(x, y, z + 0.9, OBJ, SHAPE))


def test_panning_serves_previews_then_converges_to_exact() -> None:
    r = SimRenderer()
    i0, j0 = round(-1500.0 / 0.1625), round(4600.0 / 0.1625)
    x, y = _stage_for_anchor(i0, j0)
    z = _focus(x, y)
    r.render(x, y, z, OBJ, SHAPE, live=True)
    # a joystick pan: fresh tiles come into view every frame, the last position is the target
    path = [(i0 + 170 * k, j0 + 260 * k) for k in range(1, 5)]
    for a in path:
        r.render(*_stage_for_anchor(*a), z, OBJ, SHAPE, live=True)
    assert not r.live_settled  # new tiles were filled from previews, not rendered in full
    xe, ye = _stage_for_anchor(*path[-1])
    preview = r.render_clean(xe, ye, z, OBJ, SHAPE, live=True)
    exact = r.render_clean(xe, ye, z, OBJ, SHAPE)
    assert np.abs(preview - exact).mean() < 0.03 * exact.max()  # a close stand-in
    for _ in range(40):  # the stage has stopped: each live frame refines
        if r.live_settled:
            break
        r.render(xe, ye, z, OBJ, SHAPE, live=True)
    assert r.live_settled
    _assert_matches_exact(r, xe, ye, z)
