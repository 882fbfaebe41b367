"""With a 1024² sensor a full-frame job is long: a mode switch must abandon it, and a
result from an old stage position must never be shown as current."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_ui_support import big_live_window
from thinkscope_gui.ui.camera_view import OverlayMode

pytest_plugins = ["tests.test_ui_support"]


@pytest.fixture
def big_window(qtbot: Any, ui_env: Path) -> Iterator[Any]:
    with big_live_window(qtbot, ui_env) as w:
        w.live.job_seconds = None  # no budget: at fit the job is the whole 1024² frame
        yield w


def test_mode_switch_abandons_the_full_frame_job(qtbot: Any, big_window: Any) -> None:
    w = big_window
    worker = w.live.worker
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    blend = OverlayMode.BLEND.value
    qtbot.waitUntil(lambda: worker.current is not None and worker.current.mode == blend
                    and worker.current.region()[2:] == (1024, 1024), timeout=30000)
    started = worker.current
    # switch just after a fresh full-frame job starts: it has all its bands ahead of it
    qtbot.waitUntil(lambda: worker.current is not None and worker.current is not started,
                    timeout=30000)
    shown_modes: list[str] = []
    w.live.enhancedShown.connect(lambda _n: shown_modes.append(w.view.mode.value))
    abandoned = worker.abandoned
    w.set_overlay_mode(OverlayMode.LENS)
    qtbot.waitUntil(lambda: len(shown_modes) >= 1, timeout=30000)
    assert worker.abandoned > abandoned        # the full-frame blend was given up part-way
    assert shown_modes and set(shown_modes) == {OverlayMode.LENS.value}
    img = w.view.overlay_image()
    s = w.models.enhancer.scale
    assert img.shape[0] <= round(w.view.lens_source_rect()[2] * s)  # a lens crop, not 1024²
    side = w.view.lens_source_rect()[2]
    assert f"enhancing {side}²" in w.live.heads_up()   # the heads-up line says what is done


def test_results_from_an_old_position_are_never_shown_as_current(qtbot: Any,
                                                                 big_window: Any) -> None:
    w = big_window
    view, live = w.view, w.live
    violations: list[str] = []

    def on_frame(_n: int) -> None:
        moved = view.enhanced_position is not None and view.frame_position != view.enhanced_position
        if moved and view.overlay_item.isVisible():
            violations.append(f"overlay from {view.enhanced_position} over {view.frame_position}")

    def on_enhanced(_n: int) -> None:
        if view.enhanced_position != view.frame_position:
            violations.append(f"result from {view.enhanced_position} at {view.frame_position}")

    live.frameShown.connect(on_frame)
    live.enhancedShown.connect(on_enhanced)
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    qtbot.waitUntil(lambda: live.frames_enhanced >= 1, timeout=60000)
    assert view.overlay_item.isVisible() and not view.enhanced_stale
    x0, y0 = w.scope.xy()
    for i in range(1, 4):   # move while full-frame jobs are in flight
        qtbot.waitUntil(lambda: live.worker.current is not None, timeout=30000)
        w.scope.set_xy(x0 + 20.0 * i, y0)
        x = round(x0 + 20.0 * i, 3)
        qtbot.waitUntil(lambda x=x: view.frame_position is not None
                        and view.frame_position[0] == x, timeout=10000)
        assert view.enhanced_stale and not view.overlay_item.isVisible()
        assert "stale" in live.heads_up()
    qtbot.waitUntil(lambda: not view.enhanced_stale, timeout=60000)   # replaced in time
    assert view.enhanced_position[0] == round(x0 + 60.0, 3)
    assert view.overlay_item.isVisible()
    assert not violations, violations[:3]


def test_a_mode_switch_retargets_the_worker_without_waiting_for_a_frame(
        qtbot: Any, big_window: Any) -> None:
    """With frames seconds apart, the new mode's first result is made from the frame on
    screen at the switch: the worker is re-targeted at once, not at the next frame."""
    from thinkscope_gui.ui.live_controller import JOB_S_FIT, JOB_S_ZOOMED

    w = big_window
    live = w.live
    live.job_seconds = (JOB_S_ZOOMED, JOB_S_FIT)   # quick previews, as in the application
    shown = live.frames_shown
    w.scope.set_exposure(3000.0)
    qtbot.waitUntil(lambda: live.frames_shown > shown + 1, timeout=20000)  # the slow ones
    results: list[tuple[int, str]] = []
    live.enhancedShown.connect(lambda n: results.append((n, w.view.mode.value)))
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    qtbot.waitUntil(lambda: bool(results), timeout=30000)
    on_screen = live._last_number
    w.set_overlay_mode(OverlayMode.WIPE)
    wipe = OverlayMode.WIPE.value
    qtbot.waitUntil(lambda: any(m == wipe for _, m in results), timeout=30000)
    first = next(n for n, m in results if m == wipe)
    assert first == on_screen, (first, on_screen, live.frames_shown)
    w.scope.set_exposure(10.0)   # the slow frame being made ends before the window closes
    shown = live.frames_shown
    qtbot.waitUntil(lambda: live.frames_shown > shown + 1, timeout=20000)
