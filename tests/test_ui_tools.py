"""Autofocus, calibration, settings persistence and error handling in the real window."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

pytest_plugins = ["tests.test_ui_support"]


def test_autofocus_from_focus_widget(qtbot: Any, window: Any) -> None:
    scope = window.scope
    scope.set_xy(5000.0, 0.0)
    scope.set_z(scope.z() + 3.0)  # defocus
    focus = window.focus_widget
    focus.toggle_autofocus()
    assert focus.is_running()
    qtbot.waitUntil(lambda: not focus.is_running(), timeout=60000)
    assert focus.af_status.text().startswith("z "), focus.af_status.text()
    assert abs(focus.z.value() - scope.z()) < 0.01


def test_autofocus_can_be_cancelled(qtbot: Any, window: Any) -> None:
    focus = window.focus_widget
    focus.toggle_autofocus()
    focus.toggle_autofocus()  # second click cancels
    qtbot.waitUntil(lambda: not focus.is_running(), timeout=60000)
    assert focus.af_status.text() == "cancelled" or focus.af_status.text().startswith("z ")


def test_calibration_measures_and_saves_profiles(qtbot: Any, window: Any,
                                                 ui_env: Path) -> None:
    scope = window.scope
    scope.set_xy(5000.0, 0.0)
    panel = window.panels["Objectives"]
    panel.confirm = lambda text: True
    panel.toggle_calibration()
    qtbot.waitUntil(lambda: panel._worker is None, timeout=120000)
    res = panel.last_result
    assert res is not None, panel.status.text()
    for label, p in scope.profiles.items():
        # the simulator's camera: 6.5 µm pitch / magnification
        nominal = 6.5 / p.magnification
        assert abs(res.pixel_size_um[label] - nominal) / nominal < 0.02
        assert abs(p.pixel_size_um - res.pixel_size_um[label]) < 1e-5
    saved = json.loads((ui_env / "home" / "objectives.json").read_text())
    assert set(saved["objectives"]) == set(scope.objectives())
    assert scope.objective() == "40x" and scope.xy() == (5000.0, 0.0)


def test_settings_persist_between_windows(qtbot: Any, window: Any, scope: Any) -> None:
    from thinkscope_gui.ui.main_window import MainWindow

    window.stage_widget.step.setValue(12.5)
    window.lens_size.setValue(96)
    window.set_overlay_mode("blend")
    window.close()
    again = MainWindow(scope, modal_errors=False, load_model=False)
    qtbot.addWidget(again)
    assert again.stage_widget.step.value() == 12.5
    assert again.lens_size.value() == 96
    assert again.mode_combo.currentText() == "blend"
    again.close()


def test_uncaught_errors_become_messages(qtbot: Any, window: Any) -> None:
    from thinkscope_gui.ui.errors import install_excepthook

    install_excepthook(window.reporter)
    try:
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        qtbot.waitUntil(lambda: any("boom" in m for m in window.reporter.messages),
                        timeout=5000)
        assert "boom" in window.statusBar().currentMessage()
        window.stage_widget.go_to(1e9, 0.0)  # outside the stage limits: refused, reported
        qtbot.waitUntil(lambda: any("Stage" in m for m in window.reporter.messages),
                        timeout=5000)
    finally:
        sys.excepthook = sys.__excepthook__
    assert window.isVisible()
