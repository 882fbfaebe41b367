"""The acquisition panel through real clicks: plan in physical units, validation and an
estimate before Start, no store replaced, Start/Pause/Resume/Stop, a run you can watch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt

from thinkscope_gui.ui.model_form import TupleEditor

pytest_plugins = ["tests.test_ui_support"]


def click(qtbot: Any, widget: Any) -> None:
    assert widget.isEnabled(), widget.text()
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def _small_plan(panel: Any, out: Path) -> None:
    from thinkscope_gui.pairs.plan import AcquisitionPlan, AutofocusSettings

    panel.set_plan(AcquisitionPlan(grid=(2, 2), center_um=(5000.0, 0.0), output=str(out),
                                   autofocus=AutofocusSettings(search_range_um=4.0,
                                                               coarse_step_um=1.0,
                                                               fine_step_um=0.5)))


def _tuple_editor(panel: Any, field: str) -> TupleEditor:
    editor = panel.editor._editors[field][0]
    assert isinstance(editor, TupleEditor)
    return editor


def test_plan_editor_in_physical_units_validates_and_estimates(window: Any,
                                                               ui_env: Path) -> None:
    panel = window.panels["Acquisition"]
    _small_plan(panel, ui_env / "p.h5")
    centre, grid = _tuple_editor(panel, "center_um"), _tuple_editor(panel, "grid")
    assert [w.prefix() for w in centre.spins] == ["X ", "Y "]
    assert all(w.suffix() == " µm" for w in centre.spins)
    assert [w.prefix() for w in grid.spins] == ["columns ", "rows "]
    grid.spins[0].setValue(3)
    assert panel.plan().grid == (3, 2) and len(panel.map.states) == 6
    assert panel.estimate.text().startswith("6 tiles") and "MB" in panel.estimate.text()
    assert panel.start_button.isEnabled()
    # the map shows the plan, not the stage cross (the stage sits at x=0, far away)
    (x0, x1), _ = panel.map.plot.getViewBox().viewRange()
    assert x0 > 4000 and x1 < 6000
    assert "outside the plan" in panel.map.stage_text.text()
    centre.spins[0].setValue(-900000.0)  # off the stage
    assert "not valid" in panel.estimate.text() and "stage" in panel.estimate.text()
    assert not panel.start_button.isEnabled()
    centre.spins[0].setValue(5000.0)
    assert panel.start_button.isEnabled()


def test_start_pause_resume_stop_by_clicks_never_replaces_a_store(
        qtbot: Any, window: Any, ui_env: Path) -> None:
    from thinkscope_gui.pairs.engine import RunState

    panel = window.panels["Acquisition"]
    out = ui_env / "pairs.h5"
    out.write_bytes(b"an earlier store")  # whatever is there must survive
    _small_plan(panel, out)
    assert window.scope.is_live()
    click(qtbot, panel.start_button)
    assert panel.running()
    assert out.read_bytes() == b"an earlier store"
    written = Path(panel.plan().output)
    assert written.name == "pairs_2.h5"
    assert any("pairs_2.h5" in m for m in window.reporter.messages)
    engine = panel.engine
    qtbot.waitUntil(lambda: engine.state == RunState.RUNNING, timeout=10000)
    click(qtbot, panel.pause_button)
    assert panel.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: engine.state == RunState.PAUSED, timeout=30000)
    click(qtbot, panel.pause_button)
    assert panel.pause_button.text() == "Pause"
    qtbot.waitUntil(lambda: panel.map.count("lr") + panel.map.count("accepted")
                    + panel.map.count("rejected") >= 1, timeout=60000)
    assert panel.frames_shown > 0  # the view showed the frames the engine took
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(lambda: not panel.running(), timeout=60000)
    last = panel.events[-1]
    # a Stop at any step, autofocus included, ends "cancelled" (issue 10)
    assert last.kind == "finished" and last.status.cancelled, panel.eta.text()
    assert panel.eta.text().startswith("cancelled:")
    assert written.is_file() and out.read_bytes() == b"an earlier store"
    qtbot.waitUntil(window.scope.is_live, timeout=5000)


def test_run_to_the_end_fills_the_map(qtbot: Any, window: Any, ui_env: Path) -> None:
    panel = window.panels["Acquisition"]
    _small_plan(panel, ui_env / "full.h5")
    grid = _tuple_editor(panel, "grid")
    grid.spins[1].setValue(1)
    click(qtbot, panel.start_button)
    qtbot.waitUntil(lambda: not panel.running(), timeout=120000)
    assert panel.events[-1].kind == "finished"
    assert panel.map.count("accepted") + panel.map.count("rejected") == 2
