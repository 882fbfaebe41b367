"""The simulator's start-up and stop paths: a quick first live frame that is still the
simulated slide, texture mips that equal the direct filter, and a stop that abandons the
frame being rendered (as a camera aborts an exposure)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from scipy import fft

from hardware.sim import slide, texture
from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.render import RenderAborted, SimRenderer

SHAPE = (200, 300)
OBJ = "40x"
TISSUE = (4100.0, -1200.0)


def _focus(x: float, y: float) -> float:
    return slide.slide_surface_z(x, y) + DEFAULT_SIM_OPTICS[OBJ].true_parfocal_z_um


def test_quick_first_frame_is_a_preview_that_converges_to_the_exact_frame() -> None:
    r = SimRenderer()
    r.quick_first_frame = True
    x, y = TISSUE
    z = _focus(x, y)
    first = r.render_clean(x, y, z, OBJ, SHAPE, live=True)
    assert not r.live_settled  # served from preview tiles, the worker renders the rest
    assert not r.quick_first_frame  # once only
    exact = SimRenderer().render_clean(x, y, z, OBJ, SHAPE, live=True)  # exact at once
    assert exact.std() > 0.02 * exact.max()  # tissue, not glass
    assert np.abs(first - exact).mean() < 0.03 * exact.max()  # the same field, coarser
    for _ in range(200):
        if r.live_settled:
            break
        r.render(x, y, z, OBJ, SHAPE, live=True)
        time.sleep(0.01)
    assert r.live_settled
    np.testing.assert_allclose(r.render_clean(x, y, z, OBJ, SHAPE, live=True), exact,
                               atol=1e-3 * exact.max())


@pytest.mark.parametrize(("kind", "d_nm"), [("chromatin", 81), ("granular", 325)])
def test_texture_mip_is_the_gaussian_prefiltered_tile(kind: str, d_nm: int) -> None:
    sigma = 0.4 * d_nm / 1000.0
    f = fft.fftfreq(texture.TILE_N, d=texture.TEXEL_UM)
    g = np.exp(-2 * (np.pi * sigma * f) ** 2)
    direct = fft.ifft2(fft.fft2(texture._raw(kind)) * (g[:, None] * g[None, :])).real
    step = 2 ** texture.level_of(d_nm / 1000.0)  # coarse levels: every step-th texel
    np.testing.assert_allclose(texture._mip(kind, 0, d_nm), direct[::step, ::step], atol=2e-5)


def test_an_aborted_live_frame_raises_and_the_next_one_renders() -> None:
    r = SimRenderer()
    x, y = TISSUE
    z = _focus(x, y)
    r.abort_live.set()  # a stop arrived: the frame is abandoned at its next tile
    with pytest.raises(RenderAborted):
        r.render(x, y, z, OBJ, SHAPE, live=True)
    r.abort_live.clear()
    img = r.render(x, y, z, OBJ, SHAPE, live=True, noise=False)
    assert img.shape == (*SHAPE, 3) and img.std() > 0


def _start_and_wait_for_an_image(core: Any, timeout_s: float = 20) -> None:
    core.startContinuousSequenceAcquisition(0)
    deadline = time.monotonic() + timeout_s
    while core.getRemainingImageCount() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def test_stopping_live_on_the_sim_core_stops_and_restarts_cleanly() -> None:
    from hardware.cores import close_core, make_sim_core

    core = make_sim_core(sensor=(128, 128))
    try:
        _start_and_wait_for_an_image(core)
        core.stopSequenceAcquisition()
        assert not core.isSequenceRunning()
        assert core.sim_world.sequence_stop.is_set()
        core.clearCircularBuffer()
        _start_and_wait_for_an_image(core)  # the stop flag does not carry over
        assert core.getRemainingImageCount() > 0
        assert not core.sim_world.sequence_stop.is_set()
        core.stopSequenceAcquisition()
    finally:
        close_core(core)


def test_a_live_frame_far_from_focus_is_blurred_not_a_huge_grid() -> None:
    """100x seen live hundreds of µm from focus (a safe-Z retraction): the padding is
    capped (it asked for a 36 GiB grid) and the frame is a blurred, finite image."""
    from hardware.sim.render import MAX_MARGIN_PX, margin_px

    opt = DEFAULT_SIM_OPTICS["100x"]
    assert margin_px(opt, 3000.0) == MAX_MARGIN_PX
    r = SimRenderer()
    x, y = TISSUE
    z = slide.slide_surface_z(x, y) + opt.true_parfocal_z_um + 3000.0
    img = r.render_clean(x, y, z, "100x", (64, 64), live=True)
    sharp = r.render_clean(x, y, z - 3000.0, "100x", (64, 64), live=True)
    assert np.isfinite(img).all() and img.mean() > 0
    assert (img.std(axis=(0, 1)) < 0.5 * sharp.std(axis=(0, 1))).all()  # blurred away


def test_a_stop_abandons_specimen_synthesis_within_a_tile() -> None:
    """The camera thread renders inside abandon_when(sequence_stop): once the stop is
    set, the slide's per-nucleus loops raise instead of finishing the tile."""
    opt = DEFAULT_SIM_OPTICS[OBJ]
    x, y = TISSUE
    grid = slide.Grid(x, y, opt.pixel_size_um / 2, 320, 320, 0.0)
    stop = threading.Event()
    with slide.abandon_when(stop):  # no stop: the same map as without the guard
        np.testing.assert_array_equal(slide.stain_maps(grid), slide.stain_maps(grid))
    stop.set()
    with slide.abandon_when(stop), pytest.raises(RenderAborted):
        slide.stain_maps(grid)
    assert slide.stain_maps(grid).max() > 0  # other threads (snaps, workers) unaffected


def test_stop_leaves_the_camera_thread_to_the_next_camera_user() -> None:
    """stopSequenceAcquisition returns without joining the camera thread (it may be run
    on the GUI thread); the next snap waits for it, then renders its own frame."""
    from hardware.cores import close_core, make_sim_core

    core = make_sim_core(sensor=(128, 128))
    try:
        _start_and_wait_for_an_image(core)
        camera_thread = core._acquisition_thread
        core.stopSequenceAcquisition()
        assert not core.isSequenceRunning()
        core.snapImage()
        assert camera_thread is not None and not camera_thread.is_alive()
        assert core.getImage().shape[:2] == (128, 128)
    finally:
        close_core(core)
