"""The image view: zoom buttons, a magnifying lens, a fixed consistency scale, continuous
auto-contrast with a saturation warning, a readable scale bar, and TIFFs with metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QToolBar

from thinkscope_gui.tiff import read_pixel_size_um
from thinkscope_gui.tiff import read_tiff_meta as read_info
from thinkscope_gui.ui.camera_view import CONSISTENCY_FLOOR, CONSISTENCY_TOP, OverlayMode

pytest_plugins = ["tests.test_ui_support"]


def click_action(qtbot: Any, window: Any, action: Any) -> None:
    button = window.findChild(QToolBar, "cameraToolbar").widgetForAction(action)
    assert button is not None and button.isVisible(), action.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_zoom_buttons_and_mode_change_keeps_zoom(qtbot: Any, enhancing: Any) -> None:
    w, view = enhancing, enhancing.view
    click_action(qtbot, w, w.act_fit)
    fit = view.zoom_factor()
    click_action(qtbot, w, w.act_zoom_in)
    click_action(qtbot, w, w.act_zoom_in)
    zoomed = view.zoom_factor()
    assert zoomed == pytest.approx(fit * 2.25, rel=0.02)
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    w.set_overlay_mode(OverlayMode.LENS)
    qtbot.wait(50)
    assert view.zoom_factor() == pytest.approx(zoomed, rel=0.01)  # mode change kept it
    click_action(qtbot, w, w.act_zoom_out)
    assert view.zoom_factor() == pytest.approx(zoomed / 1.5, rel=0.02)
    click_action(qtbot, w, w.act_one)
    assert view.zoom_factor() == pytest.approx(1.0, rel=0.02)
    click_action(qtbot, w, w.act_fit)
    assert view.zoom_factor() == pytest.approx(fit, rel=0.02)


def test_one_to_one_stays_one_to_one_when_the_colour_bar_appears(qtbot: Any,
                                                                 enhancing: Any) -> None:
    """The consistency map's colour bar takes width from the view: a 1:1 zoom stays 1:1
    (about the same centre) rather than shrinking with the view, so a zoomed-in view
    keeps its zoomed-in enhancement budget too."""
    w, view = enhancing, enhancing.view
    w.set_overlay_mode(OverlayMode.BLEND)
    w.set_enhancing(True)
    click_action(qtbot, w, w.act_one)
    (x0, x1), (y0, y1) = view.view.viewRange()
    width = view.view.width()
    w.mode_combo.setCurrentText(OverlayMode.CONSISTENCY.value)
    qtbot.waitUntil(lambda: view.heat_bar.isVisible() and view.view.width() < width - 5,
                    timeout=5000)
    qtbot.wait(50)
    assert view.zoom_factor() == pytest.approx(1.0, rel=0.005)
    (a0, a1), (b0, b1) = view.view.viewRange()
    assert ((a0 + a1) / 2, (b0 + b1) / 2) == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2),
                                                           abs=1.0)
    click_action(qtbot, w, w.act_zoom_in)   # a zoom of the user's own is held the same way
    held = view.zoom_factor()
    w.mode_combo.setCurrentText(OverlayMode.BLEND.value)
    qtbot.waitUntil(lambda: not view.heat_bar.isVisible(), timeout=5000)
    qtbot.wait(50)
    assert view.zoom_factor() == pytest.approx(held, rel=0.005)


def test_lens_magnifies(qtbot: Any, enhancing: Any) -> None:
    w, view = enhancing, enhancing.view
    w.lens_size.setValue(64)
    w.lens_zoom.setValue(4)
    w.set_overlay_mode(OverlayMode.LENS)
    w.set_enhancing(True)
    start = w.live.frames_enhanced
    qtbot.waitUntil(lambda: w.live.frames_enhanced >= start + 2, timeout=60000)
    s = w.models.enhancer.scale
    img = view.overlay_image()
    assert img.shape[:2] == (round(16 * s), round(16 * s))  # the centre quarter …
    shown = view.overlay_item.mapRectToParent(view.overlay_item.boundingRect())
    r0, c0, h, wd = view.lens_rect()
    assert (shown.x(), shown.y(), shown.width(), shown.height()) == pytest.approx(
        (c0, r0, wd, h), abs=1e-6)  # … drawn over the whole lens: 4x larger


def test_consistency_map_fixed_scale_and_colour_bar(qtbot: Any, enhancing: Any) -> None:
    w, view = enhancing, enhancing.view
    w.set_overlay_mode(OverlayMode.CONSISTENCY)
    w.set_enhancing(True)
    start = w.live.frames_enhanced
    qtbot.waitUntil(lambda: w.live.frames_enhanced >= start + 2, timeout=60000)
    assert tuple(view.heat_bar.levels()) == (CONSISTENCY_FLOOR, CONSISTENCY_TOP)
    assert view.heat_bar.isVisible()
    assert "σ" in view.heat_bar.toolTip() and "noise" in view.heat_bar.toolTip()
    sigma = view.overlay_image()   # the map in units of the frame's noise
    assert sigma.shape == view.frame.shape[:2] and np.isfinite(sigma).all()
    assert view.heat_item.image.dtype == np.uint8  # coloured by the worker
    w.set_overlay_mode(OverlayMode.LENS)
    assert not view.heat_bar.isVisible()


def test_continuous_auto_contrast_and_saturation_warning(qtbot: Any, window: Any) -> None:
    view = window.view
    qtbot.waitUntil(lambda: view.frame is not None, timeout=20000)
    click_action(qtbot, window, window.act_auto_live)
    assert view.auto_levels
    view.set_levels(0.0, 1.0)  # a useless range: auto-contrast must replace it
    qtbot.waitUntil(lambda: view._levels[1] > 10, timeout=5000)
    assert not view.warning.isVisible()
    window.scope.set_exposure(window.scope.exposure() * 40)  # overexposed
    qtbot.waitUntil(lambda: view.warning.isVisible(), timeout=10000)
    assert view.saturated_fraction > 0.005 and "saturated" in view.warning.text()


def test_scale_bar_label_has_a_backing(window: Any, qtbot: Any) -> None:
    qtbot.waitUntil(lambda: window.view._scale_bar is not None, timeout=20000)
    text = window.view._scale_bar.text
    assert text.fill.color().alpha() > 100 and "µm" in text.toPlainText()


def test_save_raw_and_enhanced_tiff_with_metadata(qtbot: Any, enhancing: Any,
                                                  ui_env: Path) -> None:
    w = enhancing
    raw_path = w.default_save_path("raw")
    assert raw_path.parent == ui_env / "home" / "images" and "_40x_raw" in raw_path.name
    out = w.save_frame(raw_path)
    assert out is not None and out.is_file()
    info = read_info(out)
    assert info["objective"] == "40x" and info["kind"] == "raw" and "exposure_ms" in info
    assert read_pixel_size_um(out) == pytest.approx(w.scope.pixel_size_um())
    assert w.default_save_path("raw") != raw_path  # the next default is a new name

    saved: list[Path] = []
    enh_path = w.default_save_path("enhanced")
    assert w.save_enhanced(enh_path, saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=60000)
    info = read_info(saved[0])
    s = w.models.enhancer.scale
    assert info["model"] == "m.safetensors" and float(info["model_scale"]) == s
    assert read_pixel_size_um(saved[0]) == pytest.approx(w.scope.pixel_size_um() / s)
    h, wd = w.view.frame.shape[:2]
    assert tifffile.imread(saved[0]).shape[:2] == (round(h * s), round(wd * s))
    assert np.asarray(tifffile.imread(out)).shape[:2] == (h, wd)
