"""Panels built from the app model and the scope's signals alone (no window), by real clicks.

Why: panels observe the app model and act on it; they never reach into the window or into
each other. Each panel here is built with only ``AppModel`` + ``ScopeSignals`` (and, for
loading models, the model manager that answers the app's requests), and it still works.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qtpy.QtCore import Qt

from tests.test_app_model import held_job
from tests.test_ui_acquisition import _small_plan, click
from tests.test_ui_support import make_model
from thinkscope_gui.app_model import AppModel, Message, MessageLevel

pytest_plugins = ["tests.test_ui_support"]


@pytest.fixture
def app(scope: Any) -> AppModel:
    return AppModel(scope)


@pytest.fixture
def signals(qtbot: Any, scope: Any) -> Iterator[Any]:
    from thinkscope_gui.ui.scope_signals import ScopeSignals

    s = ScopeSignals(scope)
    yield s
    s.disconnect_scope()


def _click_row(qtbot: Any, table: Any, row: int) -> None:
    """Select a table row the way a user does: a click on its first cell."""
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert table.selectionModel().selectedRows()[0].row() == row


def _row_of(panel: Any, path: Path) -> int:
    return [e.path.resolve() for e in panel.entries].index(path.resolve())


def test_models_panel_from_the_app_model_alone(qtbot: Any, app: AppModel, signals: Any,
                                               scope: Any, ui_env: Path) -> None:
    from thinkscope_gui.ui.model_manager import ModelManager
    from thinkscope_gui.ui.panels.models_panel import ModelsPanel

    model = make_model(ui_env / "home" / "models" / "m40.safetensors", scope)
    manager = ModelManager(app)  # answers app.request_model, publishes app.model
    panel = ModelsPanel(app, signals)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.status_of(model) == "ok" and panel.info.text() == "active model: none"
    _click_row(qtbot, panel.table, _row_of(panel, model))
    click(qtbot, panel.activate_button)
    qtbot.waitUntil(lambda: app.model.path == str(model), timeout=30000)
    assert app.model.usable and app.model.summary == "m40.safetensors (x2.5)"
    assert manager.path == model
    assert panel.info.text() == f"active model: {app.model.summary}"
    assert panel.status_of(model) == "active"
    manager.check(scope.profile("10x"))  # judged against another objective: disabled
    assert not app.model.usable and "disabled" in app.model.summary
    assert panel.info.text() == f"active model: {app.model.summary}"
    assert panel.status_of(model) == "active, disabled"


def test_activate_in_the_window_status_bar_agrees_with_the_panel(
        qtbot: Any, window: Any, ui_env: Path) -> None:
    model = make_model(ui_env / "home" / "models" / "m40.safetensors", window.scope)
    panel = window.panels["Models"]
    panel.refresh()  # the new file (a Refresh click would do the same)
    window.app.set_objective("40x")
    _click_row(qtbot, panel.table, _row_of(panel, model))
    click(qtbot, panel.activate_button)
    qtbot.waitUntil(lambda: window.app.model.path == str(model), timeout=30000)
    assert window.model_status.text() == "model: m40.safetensors (x2.5)"
    assert panel.info.text() == "active model: m40.safetensors (x2.5)"
    window.app.set_objective("10x")  # the window's manager re-judges the model
    qtbot.waitUntil(lambda: not window.app.model.usable, timeout=10000)
    summary = window.app.model.summary
    assert "disabled" in summary and "40x" in summary
    assert window.model_status.text() == f"model: {summary}"
    assert panel.info.text() == f"active model: {summary}"
    assert panel.status_of(model) == "active, disabled"


def test_acquisition_panel_from_the_app_model_alone(qtbot: Any, app: AppModel, signals: Any,
                                                    scope: Any, ui_env: Path) -> None:
    from thinkscope_gui.ui.panels.acquisition_panel import AcquisitionPanel

    said: list[Message] = []
    frames: list[float] = []
    app.on("message", said.append)
    app.events.frame.connect(lambda _image, px: frames.append(px))
    panel = AcquisitionPanel(app, signals)
    qtbot.addWidget(panel)
    panel.show()
    out = ui_env / "alone.h5"
    _small_plan(panel, out)
    panel.set_plan(panel.plan().model_copy(update={"grid": (2, 1)}))

    calib, inside, release = held_job(scope, "calibration")
    assert app.try_start_job(calib, "Calibration")
    try:
        assert inside.wait(10)
        click(qtbot, panel.start_button)  # refused: the stand is busy with calibration
        assert not panel.running() and not out.exists()
        assert said[-1].level == MessageLevel.ERROR and said[-1].title == "Acquisition"
        assert "busy with calibration" in said[-1].detail
    finally:
        release.set()
    app.runner.wait(10)
    qtbot.waitUntil(lambda: app.stand_holder is None, timeout=5000)

    click(qtbot, panel.start_button)
    assert panel.running() and app.stand_holder == "acquisition"
    qtbot.waitUntil(lambda: not panel.running(), timeout=120000)
    st = panel.events[-1].status
    assert panel.events[-1].kind == "finished", panel.eta.text()
    assert frames and frames[0] > 0  # each frame the engine took went to app.show_frame
    assert (str(out) in app.stores) == (st.accepted > 0)  # the Training panel's source
    assert out.is_file() and app.stand_holder is None
