"""Registration accuracy on simulated 40x/100x pairs with known offsets and rotation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from thinkscope_gui.pairs.registration import Registration, cut_patches, register

sim = pytest.importorskip("hardware.sim.render")
from hardware.sim.optics import DEFAULT_SIM_OPTICS  # noqa: E402
from hardware.sim.slide import slide_surface_z  # noqa: E402

N = 256
LR, HR = DEFAULT_SIM_OPTICS["40x"], DEFAULT_SIM_OPTICS["100x"]
SCALE = LR.pixel_size_um / HR.pixel_size_um
TRUE_ROT = HR.true_rotation_deg - LR.true_rotation_deg


def truth(ex: float, ey: float) -> tuple[float, float]:
    """Where the HR centre lands in the LR frame (LR px) for an extra HR stage offset."""
    d = np.array([HR.true_offset_xy_um[0] + ex - LR.true_offset_xy_um[0],
                  HR.true_offset_xy_um[1] + ey - LR.true_offset_xy_um[1]]) / LR.pixel_size_um
    th = -math.radians(LR.true_rotation_deg)
    return (math.cos(th) * d[0] - math.sin(th) * d[1], math.sin(th) * d[0] + math.cos(th) * d[1])


def render_pair(renderer, x: float, y: float, ex: float, ey: float, seed: int):
    z = slide_surface_z(x, y)
    lr = renderer.render(x, y, z + LR.true_parfocal_z_um, "40x", shape=(N, N),
                         rng=np.random.default_rng(seed))
    hr = renderer.render(x + ex, y + ey, z + HR.true_parfocal_z_um, "100x", shape=(N, N),
                         rng=np.random.default_rng(seed + 1000))
    return lr, hr


# epithelium, lymphoid and stroma, each with an extra known stage offset (µm)
CASES = [(5000, 0, 0.0, 0.0), (3179, 3793, 1.3, -0.7), (-3000, 100, -2.2, 1.9),
         (-7490, -933, 0.37, 0.81), (13540, 2464, -1.1, -2.6), (15421, -3852, 2.9, 0.4)]


def test_registration_accuracy_on_simulated_pairs() -> None:
    renderer = sim.SimRenderer()
    errors, rot_errors = [], []
    for k, (x, y, ex, ey) in enumerate(CASES):
        lr, hr = render_pair(renderer, x, y, ex, ey, k)
        reg = register(lr, hr, SCALE)  # no hint: the rotation is measured
        tx, ty = truth(ex, ey)
        errors.append(math.hypot(reg.dx_lr - tx, reg.dy_lr - ty))
        rot_errors.append(abs(reg.rotation_deg - TRUE_ROT))
        assert reg.correlation > 0.95
    errors = np.array(errors)
    print(f"registration error LR px: mean {errors.mean():.4f} worst {errors.max():.4f}; "
          f"rotation error deg: mean {np.mean(rot_errors):.4f}")
    assert errors.mean() <= 0.1
    assert errors.max() <= 0.25
    assert np.mean(rot_errors) <= 0.1


def test_held_rotation_is_accurate_on_a_bland_field() -> None:
    """A field with one nucleus cannot pin the rotation, but with the calibrated rotation
    held (what the engine does after its calibration tile) the shift is still exact."""
    renderer = sim.SimRenderer()
    lr, hr = render_pair(renderer, 5200, 300, 1.3, -0.7, 7)
    reg = register(lr, hr, SCALE, TRUE_ROT, estimate_rotation=False)
    tx, ty = truth(1.3, -0.7)
    assert math.hypot(reg.dx_lr - tx, reg.dy_lr - ty) <= 0.1
    assert reg.rotation_deg == TRUE_ROT


def _scene(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth analytic specimen (µm coordinates), so any sampling can be rendered exactly."""
    return (100 + 40 * np.sin(1.3 * x + 0.4 * y) * np.cos(0.9 * y - 0.2 * x)
            + 30 * np.sin(0.35 * x * x / 40 + 0.8 * y) + 20 * np.cos(2.1 * x - 1.7 * y))


def _frame(shape, p, cx, cy, rot_deg) -> np.ndarray:
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(float)
    u, v = (u - (w - 1) / 2) * p, (v - (h - 1) / 2) * p
    t = math.radians(rot_deg)
    return _scene(cx + math.cos(t) * u - math.sin(t) * v, cy + math.sin(t) * u + math.cos(t) * v)


def test_cut_patches_resamples_hr_onto_the_lr_grid() -> None:
    """With the transform known exactly, the HR patch equals the specimen sampled on the
    scale x LR-crop grid, and the LR patch is the raw crop."""
    p_lr, scale, rot = 0.2, 2.5, 0.8
    p_hr = p_lr / scale
    ox, oy = 1.1, -0.7  # HR centre relative to the LR centre, µm
    lr = _frame((120, 120), p_lr, 0.0, 0.0, 0.0)
    hr = _frame((200, 200), p_hr, ox, oy, rot)
    reg = Registration(ox / p_lr, oy / p_lr, rot, 1.0)
    side = 60
    lr_p, hr_p, (r0, c0) = cut_patches(lr[..., None].repeat(3, 2).astype(np.float32),
                                       hr[..., None].repeat(3, 2).astype(np.float32),
                                       reg, scale, side)
    assert lr_p.shape == (side, side, 3) and hr_p.shape == (150, 150, 3)
    np.testing.assert_array_equal(lr_p[..., 0], lr[r0:r0 + side, c0:c0 + side].astype(np.float32))
    # expected: specimen at HR-grid centres of the LR crop
    k = (np.arange(150) + 0.5) / scale - 0.5
    cy, cx = (120 - 1) / 2, (120 - 1) / 2
    yy, xx = np.meshgrid((r0 + k - cy) * p_lr, (c0 + k - cx) * p_lr, indexing="ij")
    expected = _scene(xx, yy)
    err = np.abs(hr_p[..., 0] - expected)[5:-5, 5:-5]
    assert err.max() < 0.5  # cubic interpolation of a smooth scene: tiny error


def test_register_finds_known_synthetic_transform() -> None:
    rng = np.random.default_rng(3)
    fine = 0.0325
    tex = ndimage.gaussian_filter(rng.normal(size=(1400, 1400)), 3) * 50 + 100
    tex_c = ndimage.spline_filter(tex, order=3)

    def frame(cx, cy, p, rot_deg, n=256):
        v, u = np.mgrid[0:n, 0:n].astype(float)
        u, v = (u - (n - 1) / 2) * p, (v - (n - 1) / 2) * p
        t = math.radians(rot_deg)
        X = cx + math.cos(t) * u - math.sin(t) * v
        Y = cy + math.sin(t) * u + math.cos(t) * v
        return ndimage.map_coordinates(tex_c, [Y / fine + 700, X / fine + 700], order=3,
                                       prefilter=False)

    lr = frame(0, 0, 0.1625, 0.0)
    hr = frame(-3.7, 2.2, 0.065, -0.4)
    reg = register(lr, hr, 2.5)
    assert reg.dx_lr == pytest.approx(-3.7 / 0.1625, abs=0.05)
    assert reg.dy_lr == pytest.approx(2.2 / 0.1625, abs=0.05)
    assert reg.rotation_deg == pytest.approx(-0.4, abs=0.03)
