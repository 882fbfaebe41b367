"""Real clicks, keys and wheel turns on the real window: nothing surprises the operator.

- arrow keys move the stage only when the image has focus;
- the mouse wheel never edits a field that does not have focus;
- a second training run (Start clicked twice) never overwrites the first model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QPointF, Qt
from qtpy.QtGui import QWheelEvent
from qtpy.QtWidgets import QApplication, QDoubleSpinBox

pytest_plugins = ["tests.test_ui_support"]


def _focus(qtbot: Any, window: Any, widget: Any) -> None:
    window.activateWindow()
    widget.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(lambda: widget.hasFocus() or widget.isAncestorOf(
        QApplication.focusWidget()), timeout=3000)


def test_arrow_keys_move_stage_only_from_the_image(qtbot: Any, window: Any) -> None:
    stage = window.stage_widget
    stage.step.setValue(20.0)
    x0, y0 = window.scope.xy()
    # (the objective selector is left out: Up/Down there rightly change the objective)
    for widget in (window.exposure_widget.spin, stage.step, window.panels["Models"].table):
        _focus(qtbot, window, widget)
        for key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            qtbot.keyClick(QApplication.focusWidget(), key)
        qtbot.wait(50)
        assert not stage.mover.busy()
        assert np.allclose(window.scope.xy(), (x0, y0)), type(widget).__name__
    qtbot.mouseClick(window.view._glw.viewport(), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.view.isAncestorOf(QApplication.focusWidget()),
                    timeout=3000)  # a click on the image gives it the keys
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: np.allclose(window.scope.xy(), (x0 + 20.0, y0)), timeout=5000)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: np.allclose(window.scope.xy(), (x0 + 20.0, y0 + 20.0)),
                    timeout=5000)


def _wheel(widget: Any, steps: int) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                     QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def test_wheel_does_not_edit_unfocused_fields(qtbot: Any, window: Any) -> None:
    panel = window.panels["Acquisition"]
    spins = [w for w in panel.editor.findChildren(QDoubleSpinBox) if w.isVisible()]
    assert spins
    spin = spins[0]
    before = spin.value()
    _focus(qtbot, window, window.view)
    _wheel(spin, -5)
    assert spin.value() == before and not spin.hasFocus()
    exposure = window.exposure_widget.spin
    ms = window.scope.exposure()
    _wheel(exposure, -5)
    assert window.scope.exposure() == ms
    # a field the user clicked into does take the wheel
    _focus(qtbot, window, spin)
    _wheel(spin, 1)
    assert spin.value() != before


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("cancel_second", [False, True], ids=["finish", "cancel"])
def test_second_training_run_keeps_first_model(qtbot: Any, window: Any, ui_env: Path,
                                               cancel_second: bool) -> None:
    from thinkscope_gui.learn.train import TrainConfig

    panel = window.panels["Training"]
    out = ui_env / "home" / "models" / "tiny.safetensors"
    panel.form.set_value(TrainConfig(sim_pairs=6, sim_tile=64, epochs=2, steps_per_epoch=2,
                                     batch_size=2, patch=16, out=str(out), threads=1,
                                     max_val_tiles=2))
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert panel.running()
    qtbot.waitUntil(lambda: not panel.running(), timeout=120000)
    assert panel.last_status.state == "done", panel.status.text()
    first = _digest(out)
    qtbot.waitUntil(lambda: panel._preview_worker is None, timeout=60000)

    # the form still names tiny.safetensors; Start again must not write over it
    if cancel_second:  # long enough that Stop lands while it trains, even on a loaded machine
        panel.form.set_value(TrainConfig(sim_pairs=6, sim_tile=64, epochs=500,
                                         steps_per_epoch=2, batch_size=2, patch=16,
                                         out=str(out), threads=1, max_val_tiles=2))
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert panel.running()
    second = Path(panel.cfg.out)
    assert second != out and second.name == "tiny_2.safetensors"
    assert panel.form.raw()["out"] == str(second)  # the form shows the real output
    if cancel_second:
        qtbot.waitUntil(lambda: panel.last_status is not None
                        and panel.last_status.state == "training", timeout=60000)
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)  # "Stop training"
    qtbot.waitUntil(lambda: not panel.running(), timeout=120000)
    assert _digest(out) == first
    if not cancel_second:
        assert panel.last_status.state == "done" and second.is_file()
    qtbot.waitUntil(lambda: panel._preview_worker is None, timeout=60000)
