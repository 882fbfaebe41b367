"""Optics of the simulated microscope: resolution, registration geometry, focus, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import fft
from skimage.registration import phase_cross_correlation

from hardware.sim import slide
from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.render import SimRenderer, fold_to_pixels

SHAPE = (256, 256)


@pytest.fixture(scope="module")
def renderer() -> SimRenderer:
    return SimRenderer()


def _focus_z(obj: str, x: float, y: float) -> float:
    return slide.slide_surface_z(x, y) + DEFAULT_SIM_OPTICS[obj].true_parfocal_z_um


def _stage_for(obj: str, sx: float, sy: float) -> tuple[float, float]:
    """Stage position that puts slide point (sx, sy) at the field centre of `obj`."""
    ox, oy = DEFAULT_SIM_OPTICS[obj].true_offset_xy_um
    return sx - ox, sy - oy


def _bar_contrast(renderer: SimRenderer, obj: str, period: float) -> np.ndarray:
    """Median per-row Michelson contrast across the vertical bar group, per channel."""
    group = next(g for g in slide.bar_groups() if g.period_um == period and g.orientation == "v")
    x, y = _stage_for(obj, *group.center_xy_um)
    t = renderer.transmission(x, y, _focus_z(obj, x, y), obj, SHAPE)
    half = int(8.0 / DEFAULT_SIM_OPTICS[obj].pixel_size_um)  # central 16 µm, inside the group
    c = t[128 - half : 128 + half, 128 - half : 128 + half]
    m = (c.max(axis=1) - c.min(axis=1)) / (c.max(axis=1) + c.min(axis=1))
    return np.median(m, axis=0)


def test_fold_equals_sampling_every_second_point() -> None:
    a = np.random.default_rng(0).standard_normal((80, 96)).astype(np.float32)
    g = fft.irfft2(fold_to_pixels(fft.rfft2(a), 40, 48), s=(40, 48))
    np.testing.assert_allclose(g, a[::2, ::2], atol=1e-5)


def test_bar_between_cutoffs_resolved_at_100x_not_40x(renderer: SimRenderer) -> None:
    # 0.25 µm lies between the 100x green cutoff period (0.196) and the 40x one (0.29)
    c100 = _bar_contrast(renderer, "100x", 0.25)
    c40 = _bar_contrast(renderer, "40x", 0.25)
    assert c100[1] > 0.1 and c100[2] > 0.15  # green, blue resolved
    assert c100[2] > c100[1] > c100[0]  # shorter wavelength resolves better
    assert np.all(c40 < 0.03)
    # a coarse period is resolved by both
    assert np.all(_bar_contrast(renderer, "40x", 1.0) > 0.5)


def test_bars_darken_the_mean_equally_for_both_objectives(renderer: SimRenderer) -> None:
    # the mean transmission of a bar group does not depend on the sampling (no OD bias)
    means = []
    for obj in ("40x", "100x"):
        group = next(g for g in slide.bar_groups() if g.period_um == 0.2)
        x, y = _stage_for(obj, *group.center_xy_um)
        t = renderer.transmission(x, y, _focus_z(obj, x, y), obj, (128, 128))
        means.append(t[32:96, 32:96].mean())
    expected = 0.5 * (1 + math.exp(-slide.BAR_OD))
    np.testing.assert_allclose(means, expected, rtol=0.03)


def test_stage_move_shifts_image_by_subpixel_amount(renderer: SimRenderer) -> None:
    obj = "40x"
    opt = DEFAULT_SIM_OPTICS[obj]
    x, y, z = 5200.0, 300.0, _focus_z(obj, 5200.0, 300.0)
    dx, dy = 0.37, -0.23  # µm: 2.28 and -1.42 px
    a = renderer.transmission(x, y, z, obj, SHAPE)[..., 1]
    b = renderer.transmission(x + dx, y + dy, z, obj, SHAPE)[..., 1]
    th = math.radians(opt.true_rotation_deg)
    u = (math.cos(th) * dx + math.sin(th) * dy) / opt.pixel_size_um
    v = (-math.sin(th) * dx + math.cos(th) * dy) / opt.pixel_size_um
    win = np.hanning(SHAPE[0])[:, None] * np.hanning(SHAPE[1])[None, :]  # no edge bias
    shift, _, _ = phase_cross_correlation((a - a.mean()) * win, (b - b.mean()) * win,
                                          upsample_factor=100)
    np.testing.assert_allclose(shift, [v, u], atol=0.1)


@pytest.mark.parametrize("obj", ["40x", "100x"])
def test_sharpest_at_focal_plane(renderer: SimRenderer, obj: str) -> None:
    x, y = 4100.0, -1200.0
    zf = _focus_z(obj, x, y)
    dzs = np.arange(-3.0, 3.01, 0.25)
    scores = [_sharpness(renderer.transmission(x, y, zf + dz, obj, SHAPE)) for dz in dzs]
    assert abs(dzs[int(np.argmax(scores))]) < 0.13
    assert scores[0] < 0.5 * max(scores) and scores[-1] < 0.5 * max(scores)


def test_depth_of_field_shrinks_with_na(renderer: SimRenderer) -> None:
    x, y = 4100.0, -1200.0
    dzs = np.arange(-2.0, 2.01, 0.05)
    widths = {}
    for obj in ("40x", "100x"):
        zf = _focus_z(obj, x, y)
        s = np.array([_sharpness(renderer.transmission(x, y, zf + dz, obj, SHAPE)) for dz in dzs])
        s = (s - s.min()) / (s.max() - s.min())
        above = dzs[s > 0.5]
        widths[obj] = float(above.max() - above.min() + 0.05)
    # textbook DOF (λn/NA² + n·e/(M·NA)): 0.78 µm at 40x/0.95, 0.50 µm at 100x/1.4 oil
    assert 0.5 < widths["40x"] < 1.1
    assert 0.3 < widths["100x"] < 0.7
    assert widths["100x"] < 0.8 * widths["40x"]


def _sharpness(t: np.ndarray) -> float:
    g = t[..., 1]
    return float(np.mean(np.diff(g, axis=0) ** 2) + np.mean(np.diff(g, axis=1) ** 2))


def test_renders_are_deterministic_across_instances() -> None:
    a = SimRenderer().transmission(-3000.0, 700.0, 0.0, "100x", (96, 96))
    b = SimRenderer().transmission(-3000.0, 700.0, 0.0, "100x", (96, 96))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("obj", ["10x", "40x"])
def test_live_tiles_match_exact_render_on_whole_pixels(renderer: SimRenderer, obj: str) -> None:
    opt = DEFAULT_SIM_OPTICS[obj]
    p, th = opt.pixel_size_um, math.radians(opt.true_rotation_deg)
    i0, j0 = round(900.0 / p), round(-2300.0 / p)  # integer lattice anchor of the top-left pixel
    ic, jc = i0 + (SHAPE[0] - 1) / 2, j0 + (SHAPE[1] - 1) / 2
    cx = math.cos(th) * jc * p - math.sin(th) * ic * p
    cy = math.sin(th) * jc * p + math.cos(th) * ic * p
    x, y = cx - opt.true_offset_xy_um[0], cy - opt.true_offset_xy_um[1]
    z = _focus_z(obj, x, y)
    exact = renderer.transmission(x, y, z, obj, SHAPE)
    live = renderer.render_clean(x, y, z, obj, SHAPE, live=True)
    e_exact = renderer.render_clean(x, y, z, obj, SHAPE)
    assert exact.std() > 0.02  # there is tissue to compare
    np.testing.assert_allclose(live, e_exact, atol=0.01 * e_exact.max())
