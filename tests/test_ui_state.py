"""One truth for the model's state, through real clicks: Models panel and status bar say
the same thing, and the explanation of a disabled model stays until it changes. The
oil -> dry objective change asks first, in a real dialog answered by a real click."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QMessageBox

from tests.test_ui_support import make_model
from tests.test_ui_watchdog import answer_next_dialog, button, choose_objective, click

pytest_plugins = ["tests.test_ui_support"]


def test_activate_click_and_objective_change_agree_everywhere(
        qtbot: Any, window: Any, ui_env: Path) -> None:
    qtbot.waitUntil(lambda: window.ready, timeout=60000)
    model = make_model(ui_env / "home" / "models" / "m40.safetensors", window.scope)
    models = window.panels["Models"]
    click(qtbot, button(models, "Refresh"))
    models.table.selectRow([e.path for e in models.entries].index(model))
    click(qtbot, button(models, "Activate"))
    qtbot.waitUntil(lambda: window.models.path == model and window.models.usable,
                    timeout=30000)
    assert models.status_of(model) == "active"
    assert window.model_status.text() == "model: m40.safetensors (x2.5)"
    assert window.models.summary() in models.info.text()

    # 40x -> 100x: the 40x model no longer fits; both places say so, and it stays said
    choose_objective(qtbot, window, "100x")
    qtbot.waitUntil(lambda: window.scope.objective() == "100x"
                    and not window.models.usable, timeout=30000)
    assert models.status_of(model) == "active, disabled"
    assert "disabled" in window.model_status.text()
    assert window.models.summary() in models.info.text()
    qtbot.wait(3500)  # longer than a transient notice used to last
    assert "disabled" in window.model_status.text() and window.model_status.toolTip()
    assert any("Model disabled" in m for m in window.reporter.messages)

    # 100x (oil) -> 40x (dry): declined first, then confirmed, by clicks in the dialog
    texts = answer_next_dialog(qtbot, QMessageBox.StandardButton.No)
    choose_objective(qtbot, window, "40x")
    qtbot.waitUntil(lambda: bool(texts), timeout=10000)
    qtbot.wait(200)
    assert window.scope.objective() == "100x" and "oil" in texts[0]
    assert window.objective_widget.combo.currentText() == "100x"
    texts = answer_next_dialog(qtbot, QMessageBox.StandardButton.Yes)
    choose_objective(qtbot, window, "40x")
    qtbot.waitUntil(lambda: window.scope.objective() == "40x" and window.models.usable,
                    timeout=30000)
    assert texts and models.status_of(model) == "active"
    assert window.model_status.text() == "model: m40.safetensors (x2.5)"
