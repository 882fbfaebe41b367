"""Live view, scale bar, objective safety and model checks on the real window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.test_ui_support import make_model
from thinkscope_gui.tiff import read_pixel_size_um

pytest_plugins = ["tests.test_ui_support"]


def test_live_view_receives_frames(qtbot: Any, window: Any) -> None:
    qtbot.waitUntil(lambda: window.live.frames_shown >= 5, timeout=20000)
    frame = window.view.frame
    assert frame is not None and frame.shape == (256, 256, 3)
    assert window.view.image_item.image.shape == frame.shape
    assert len({window.live.frames_shown}) == 1 and window.live.camera_rate.count >= 2
    lo, hi = window.view.auto_contrast()
    assert 0 <= lo < hi <= 255
    assert "camera" in window.live.heads_up()


def test_save_frame_tiff_with_pixel_size(qtbot: Any, window: Any, tmp_path: Path) -> None:
    window.snap()
    path = window.save_frame(tmp_path / "f.tif")
    assert path is not None and path.is_file()
    assert abs(read_pixel_size_um(path) - window.scope.pixel_size_um()) < 1e-6


def test_stage_keys_and_fov_moves(qtbot: Any, window: Any) -> None:
    x0, y0 = window.scope.xy()
    window.stage_widget.step.setValue(10.0)
    window.stage_widget.move(1, 0, fov=False)  # off the GUI thread
    qtbot.waitUntil(lambda: np.allclose(window.scope.xy(), (x0 + 10.0, y0)), timeout=5000)
    fov_x, _ = window.stage_widget.field_of_view_um()
    window.stage_widget.move(0, 1, fov=True)
    qtbot.waitUntil(lambda: np.allclose(window.scope.xy(), (x0 + 10.0, y0 + fov_x),
                                        atol=1e-6), timeout=5000)
    qtbot.waitUntil(lambda: not window.stage_widget.mover.busy(), timeout=5000)


def test_objective_switch_updates_scale_bar_and_disables_mismatched_model(
        qtbot: Any, window: Any, ui_env: Path) -> None:
    scope_ = window.scope
    model = make_model(ui_env / "m40.safetensors", scope_)
    window.activate_model(model)
    qtbot.waitUntil(lambda: window.models.enhancer is not None, timeout=30000)
    window.set_overlay_mode("enhancement lens")
    window.set_enhancing(True)
    assert window.live.enhancing
    qtbot.waitUntil(lambda: window.view.pixel_size_um == scope_.pixel_size_um(), timeout=10000)
    px40 = window.view.pixel_size_um
    assert abs(window.view.scale_bar_px * px40 - window.view.scale_bar_um) < 1e-9

    assert window.objective_widget.request("10x")
    qtbot.waitUntil(lambda: scope_.objective() == "10x" and not window.live.enhancing,
                    timeout=20000)
    qtbot.waitUntil(lambda: window.view.pixel_size_um == scope_.profile("10x").pixel_size_um,
                    timeout=20000)
    assert window.view.pixel_size_um > px40
    assert abs(window.view.scale_bar_px * window.view.pixel_size_um
               - window.view.scale_bar_um) < 1e-9
    assert not window.models.usable
    assert any("10x" in m and "40x" in m for m in window.reporter.messages)
    window.set_enhancing(True)  # refused while the model does not match
    assert not window.live.enhancing


def test_oil_to_dry_needs_confirmation(qtbot: Any, window: Any) -> None:
    scope_ = window.scope
    assert window.objective_widget.request("100x")
    qtbot.waitUntil(lambda: scope_.objective() == "100x", timeout=20000)
    window.objective_widget.confirm = lambda text: False
    assert not window.objective_widget.request("40x")
    assert scope_.objective() == "100x"
    asked: list[str] = []
    window.objective_widget.confirm = lambda text: asked.append(text) or True
    assert window.objective_widget.request("40x")
    qtbot.waitUntil(lambda: scope_.objective() == "40x", timeout=20000)
    assert asked and "oil" in asked[0]
