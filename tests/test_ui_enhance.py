"""Live enhancement overlays on the real window with a real (small, untrained) model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from thinkscope_gui.learn.consistency import consistency_map
from thinkscope_gui.ui.camera_view import OverlayMode

pytest_plugins = ["tests.test_ui_support"]


@pytest.mark.parametrize("mode", [m for m in OverlayMode if m != OverlayMode.OFF])
def test_overlay_mode_renders(qtbot: Any, enhancing: Any, mode: OverlayMode) -> None:
    w = enhancing
    w.lens_size.setValue(64)
    w.set_overlay_mode(mode)
    w.set_enhancing(True)
    assert w.live.enhancing and w.view.mode == mode
    start = w.live.frames_enhanced
    qtbot.waitUntil(lambda: w.live.frames_enhanced >= start + 2, timeout=60000)
    h, wd = w.view.frame.shape[:2]
    s = w.models.enhancer.scale
    img = w.view.overlay_image()
    assert img is not None
    # only what the screen shows, at no more resolution than it shows
    d = min(s, w.view.zoom_factor())
    if mode == OverlayMode.LENS:
        target = w.view.enhance_target(s, 2)
        assert target is not None
        d = target[1]
        assert img.shape == (round(32 * d), round(32 * d), 3)  # 2x magnifying lens
    elif mode == OverlayMode.CONSISTENCY:
        assert img.shape == (h, wd)                           # sigma map, LR grid
    else:
        r0, c0, rh, rw = w.view.visible_rect()
        if mode == OverlayMode.WIPE:
            rw = min(rw, round(w.view.divider.value()) - c0)
        assert abs(img.shape[0] - rh * d) <= 1 and abs(img.shape[1] - rw * d) <= 1
        assert img.shape[2] == 3 and d < s  # at fit a 256² frame needs less than 2.5x
    if mode == OverlayMode.CONSISTENCY:
        assert np.isfinite(img).all() and img.min() >= 0
    else:
        assert img.dtype == w.view.frame.dtype
    shot = w.grab()
    assert not shot.isNull() and shot.width() > 100
    assert "enhanced" in w.live.heads_up()


def test_lens_follows_cursor_and_wipe_divider_cuts(qtbot: Any, enhancing: Any) -> None:
    from qtpy.QtCore import QPointF

    w = enhancing
    view = w.view
    w.lens_size.setValue(64)
    w.set_overlay_mode(OverlayMode.LENS)
    w.set_enhancing(True)
    readouts: list[str] = []
    view.readout.connect(readouts.append)
    view._mouse_moved(view.view.mapViewToScene(QPointF(200.3, 60.3)))
    r0, c0, h, wd = view.lens_rect()
    assert (c0, r0, h, wd) == (168, 28, 64, 64)  # centred on the cursor
    assert readouts and readouts[-1].startswith("px (200, 60)")
    start = w.live.frames_enhanced
    qtbot.waitUntil(lambda: w.live.frames_enhanced >= start + 2, timeout=60000)
    assert view._enhanced_origin == (28 + 16, 168 + 16)  # the centre half, magnified 2x
    w.set_overlay_mode(OverlayMode.WIPE)
    start = w.live.frames_enhanced
    qtbot.waitUntil(lambda: w.live.frames_enhanced >= start + 1, timeout=60000)
    view.divider.setValue(64)
    assert view.overlay_image().shape[1] == round(64 * view.scale)


def test_latest_frame_wins_drops_stale_jobs(qtbot: Any, enhancing: Any) -> None:
    """With full frames the model is slower than the camera: stale frames are dropped."""
    w = enhancing
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    qtbot.waitUntil(lambda: w.live.frames_enhanced >= 3, timeout=60000)
    assert w.live.frames_shown > w.live.frames_enhanced
    assert w.live.worker.dropped > 0


def test_consistency_map_is_zero_for_self_consistent_image() -> None:
    flat = np.full((32, 32, 3), 100, np.uint8)
    hr = np.full((80, 80, 3), 100, np.uint8)
    m = consistency_map(flat, hr, 0.95, 0.1625, 0.065)
    assert m.shape == (32, 32) and float(m.max()) < 1e-4
    bright = np.full((80, 80, 3), 200, np.uint8)
    assert float(consistency_map(flat, bright, 0.95, 0.1625, 0.065).mean()) > 0.3


def test_worker_drops_results_of_a_swapped_out_model(qtbot: Any) -> None:
    import threading

    from thinkscope_gui.ui.enhance_worker import EnhanceJob, LiveEnhanceWorker

    gate = threading.Event()

    class Slow:
        scale = 2.0

        def enhance(self, image: np.ndarray) -> np.ndarray:
            gate.wait(5)
            return image

    worker = LiveEnhanceWorker()
    results: list[Any] = []
    worker.result.connect(results.append)
    worker.set_enhancer(Slow())
    worker.start()
    try:
        worker.submit(EnhanceJob(np.zeros((4, 4, 3), np.uint8), 1))
        qtbot.waitUntil(lambda: not worker.busy(), timeout=5000)  # job taken
        worker.set_enhancer(None)  # swap while the old model is still working
        gate.set()
        qtbot.wait(200)
        assert results == [] and worker.done == 0
    finally:
        worker.stop()
