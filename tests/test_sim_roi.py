"""Camera ROI: simulator renders only the region (same pixels as the full frame), facade
set/clear/roi_region, and autofocus reading out just the central ROI."""

from __future__ import annotations

import numpy as np
import pytest

from hardware import MicroscopeError, open_microscope
from hardware.sim import slide
from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.render import SimRenderer
from thinkscope_gui.pairs.autofocus import autofocus
from thinkscope_gui.pairs.plan import AutofocusSettings

SHAPE = (192, 256)  # (H, W): not square, so x/y mix-ups show
TISSUE = (5012.3, 103.1)  # epithelium, off the pixel lattice


def _focus(objective: str) -> float:
    return slide.slide_surface_z(*TISSUE) + DEFAULT_SIM_OPTICS[objective].true_parfocal_z_um


@pytest.mark.parametrize("objective", ["10x", "40x", "100x"])  # all have a small rotation
def test_renderer_roi_is_the_crop_of_the_full_frame(objective: str) -> None:
    r = SimRenderer()
    z = _focus(objective) + 0.2
    full = r.render_clean(*TISSUE, z, objective, SHAPE)
    scale = float(full.max())
    for roi in ((64, 40, 100, 90), (0, 0, 128, 192), (3, 100, 253, 37), (77, 51, 102, 90)):
        x0, y0, w, h = roi
        sub = r.render_clean(*TISSUE, z, objective, SHAPE, roi=roi)
        assert sub.shape == (h, w, 3)
        ref = full[y0:y0 + h, x0:x0 + w]
        # same specimen points, vignetting and defocus; only FFT edge effects differ
        assert np.abs(sub - ref).max() < 0.01 * scale
        assert np.abs(sub - ref).mean() < 0.001 * scale
    # a shifted ROI is not the same picture as the centre crop (the test can fail)
    off = r.render_clean(*TISSUE, z, objective, SHAPE, roi=(94, 70, 100, 90))
    assert np.abs(off - full[40:130, 64:164]).mean() > 0.005 * scale
    with pytest.raises(ValueError):
        r.render(*TISSUE, 0.0, objective, SHAPE, roi=(200, 0, 100, 10))


def test_renderer_roi_live_and_noise_shapes() -> None:
    r = SimRenderer()
    roi = (10, 20, 64, 48)
    full = r.render(*TISSUE, 0.0, "40x", SHAPE, noise=False, live=True)
    live = r.render(*TISSUE, 0.0, "40x", SHAPE, noise=False, live=True, roi=roi)
    np.testing.assert_array_equal(live, full[20:68, 10:74])
    noisy = r.render(*TISSUE, 0.0, "40x", SHAPE, roi=roi, rng=np.random.default_rng(1))
    clean = r.render(*TISSUE, 0.0, "40x", SHAPE, roi=roi, noise=False)
    assert noisy.shape == clean.shape == (48, 64, 3)
    assert 0 < np.abs(noisy.astype(float) - clean).mean() < 6


@pytest.fixture()
def scope():
    s = open_microscope("sim", sensor=SHAPE)
    s.core.setProperty("Camera", "Noise", "Off")
    s.set_xy(*TISSUE)
    yield s
    s.close()


def test_camera_roi_through_core_and_facade(scope) -> None:  # noqa: ANN001
    assert scope.roi() == (0, 0, 256, 192) and scope.supports_roi()
    assert scope.roi() == (0, 0, 256, 192)  # the probe left nothing behind
    full = scope.snap()
    scope.set_roi(30, 50, 120, 64)
    assert scope.roi() == (30, 50, 120, 64)
    assert scope.image_shape() == (64, 120)
    assert list(scope.core.getROI()) == [30, 50, 120, 64]
    sub = scope.snap()
    assert sub.shape == (64, 120, 3)
    assert np.abs(sub.astype(int) - full[50:114, 30:150]).max() <= 3  # 8-bit DN
    scope.clear_roi()
    assert scope.image_shape() == SHAPE
    with pytest.raises(MicroscopeError):
        scope.set_roi(200, 0, 100, 10)


def test_roi_region_is_central_and_restores_also_on_errors(scope) -> None:  # noqa: ANN001
    with scope.roi_region(0.5) as region:
        assert region == (64, 48, 128, 96) == scope.roi()
        assert scope.snap().shape == (96, 128, 3)
    assert scope.roi() == (0, 0, 256, 192) and scope.image_shape() == SHAPE
    scope.set_roi(10, 20, 100, 60)
    with pytest.raises(KeyError), scope.roi_region(0.5) as region:
        assert region == (35, 35, 50, 30)
        raise KeyError("boom")
    assert scope.roi() == (10, 20, 100, 60)
    scope.clear_roi()
    scope.start_live()
    try:
        with pytest.raises(MicroscopeError), scope.roi_region(0.5):
            pass
    finally:
        scope.stop_live()


def test_autofocus_uses_the_camera_roi_and_finds_the_same_focus(scope) -> None:  # noqa: ANN001
    truth = _focus("40x")
    s = AutofocusSettings(search_range_um=4, coarse_step_um=1.0, fine_step_um=0.25,
                          roi_fraction=0.6)
    shapes: list[tuple[int, ...]] = []
    snap = scope.snap

    def spy() -> np.ndarray:
        img = snap()
        shapes.append(img.shape)
        return img

    scope.snap = spy
    with_roi = autofocus(scope, s, z_guess=truth + 1.3)
    assert set(shapes) == {(115, 153, 3)}  # only the central 60 % was read out
    assert scope.roi() == (0, 0, 256, 192)
    shapes.clear()
    scope.supports_roi = lambda: False  # same search on cropped full frames
    cropped = autofocus(scope, s, z_guess=truth + 1.3)
    assert set(shapes) == {(192, 256, 3)}
    assert with_roi.evaluations == cropped.evaluations
    assert abs(with_roi.z - cropped.z) < 0.05
    assert abs(with_roi.z - truth) < 0.3
