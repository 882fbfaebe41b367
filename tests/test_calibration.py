"""Calibration as a procedure on the stand (pairs/), its command, and its GUI panel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import main
from hardware import open_microscope
from thinkscope_gui.pairs.calibration import CalibrationError, calibrate, uncalibrated

pytest_plugins = ["tests.test_ui_support"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("THINKSCOPE_SETTINGS_DIR", str(tmp_path / "settings"))
    return tmp_path / "home"


def test_calibration_measures_and_restores_objective_xy_and_focus(home: Path) -> None:
    with open_microscope("sim", sensor=(256, 256)) as scope:
        scope.set_xy(5000.0, 0.0)
        start = (scope.objective(), scope.xy(), scope.z())
        assert uncalibrated(scope.profiles, scope.objectives()) == ["40x", "100x"]
        result = calibrate(scope, objectives=["40X"])  # any case; the reference joins
        assert (scope.objective(), scope.xy(), scope.z()) == start  # focus too (issue 13.8)
    assert list(result.pixel_size_um) == ["10x", "40x"] and result.reference == "10x"
    assert result.pixel_size_um["40x"] == pytest.approx(0.1625, rel=0.02)
    assert result.pixel_size_um["10x"] == pytest.approx(0.65, rel=0.02)
    # the simulator's 40x sits a few µm off centre: calibration finds a real offset
    assert result.offset_xy_um["40x"] != (0.0, 0.0)
    assert "40x: 0.16" in result.summary() and "[reference]" in result.summary()
    assert uncalibrated(result.profiles, ["10x", "40x"]) == []


def test_oil_needs_confirmation_and_unknown_objectives_are_named(home: Path) -> None:
    with open_microscope("sim", sensor=(64, 64)) as scope:
        with pytest.raises(CalibrationError, match="--confirm-oil-to-dry"):
            calibrate(scope, objectives=["100x"])
        with pytest.raises(CalibrationError, match="'63x' is not an active objective"):
            calibrate(scope, objectives=["63x"])


def test_calibrate_command_prints_and_saves(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main.main(["calibrate", "--objectives", "40x", "--sensor", "256",
                    "--x", "5000", "--y", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "measured:" in out and "10x:" in out and "40x:" in out
    saved = json.loads((home / "objectives.json").read_text())["objectives"]
    assert saved["40x"]["pixel_size_um"] == pytest.approx(0.1625, rel=0.02)
    assert "saved profiles to" in out
    # the next session uses the calibration (core pixel size included)
    with open_microscope("sim", sensor=(32, 32)) as scope:
        scope.set_objective("40x")
        assert scope.pixel_size_um() == pytest.approx(saved["40x"]["pixel_size_um"])


# ---------------------------------------------------------------- the Objectives panel

def test_apply_and_save_button_saves(qtbot: Any, window: Any, ui_env: Path) -> None:
    from qtpy.QtCore import Qt

    panel = window.panels["Objectives"]
    row = [panel.editor.table.item(r, 0).text()
           for r in range(panel.editor.table.rowCount())].index("40x")
    panel.editor.table.item(row, 2).setText("0.9")  # NA
    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    assert window.reporter.messages == []
    assert panel.status.text().startswith("saved to")
    saved = json.loads((ui_env / "home" / "objectives.json").read_text())["objectives"]
    assert saved["40x"]["na"] == 0.9 and window.scope.profile("40x").na == 0.9


def test_add_objective_button_parses_the_label(qtbot: Any, window: Any, ui_env: Path) -> None:
    from qtpy.QtCore import Qt

    panel = window.panels["Objectives"]
    panel.ask_label = lambda: ("Plan Apo 60x/1.40 Oil", True)
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    assert window.reporter.messages == []
    p = window.scope.profile("Plan Apo 60x/1.40 Oil")
    assert (p.magnification, p.na, p.immersion) == (60, 1.4, "oil")


def test_calibration_result_stays_until_dismissed(qtbot: Any, window: Any) -> None:
    from qtpy.QtCore import Qt

    panel = window.panels["Objectives"]
    assert panel.calibrate_now.isVisible()  # a new user is asked to calibrate
    assert "not calibrated: 40x, 100x" in panel.notice.text()
    window.scope.set_xy(5000.0, 0.0)
    z0 = window.scope.z()
    panel.confirm = lambda text: True
    qtbot.mouseClick(panel.calib_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel._worker is None, timeout=180000)
    assert panel.last_result is not None, window.reporter.messages
    assert panel.result_box.isVisible()
    assert "100x:" in panel.result_box.text.text()
    assert window.scope.z() == z0  # back in focus
    assert not panel.calibrate_now.isVisible()
    qtbot.wait(300)  # later status updates must not replace the result
    assert panel.result_box.isVisible()
    qtbot.mouseClick(panel.result_box.dismiss_button, Qt.MouseButton.LeftButton)
    assert not panel.result_box.isVisible()


def test_stand_settings_saved_from_the_panel(qtbot: Any, window: Any, ui_env: Path) -> None:
    from qtpy.QtCore import Qt

    panel = window.panels["Objectives"]
    panel.safe_z_edit.setText("-2")
    qtbot.mouseClick(panel.stand_save_button, Qt.MouseButton.LeftButton)
    assert window.scope.safe_z() == -2.0
    data = json.loads((ui_env / "home" / "stage.json").read_text())
    assert data["stands"]["sim"]["safe_z_um"] == -2.0
    panel.xy_limits_edit.setText("1, 2, 3")
    qtbot.mouseClick(panel.stand_save_button, Qt.MouseButton.LeftButton)
    assert any("XY stage limits" in m for m in window.reporter.messages)
    assert json.loads((ui_env / "home" / "stage.json").read_text()) == data  # nothing lost


def test_panel_on_a_foreign_stand_shows_its_turret_and_keeps_other_entries(
        qtbot: Any, tmp_path: Path, home: Path) -> None:
    from qtpy.QtCore import Qt

    from tests.test_stand_cli import FOREIGN_CFG
    from thinkscope_gui.ui.main_window import MainWindow

    home.mkdir(parents=True)
    (home / "objectives.json").write_text(json.dumps({"objectives": {
        "Other stand 20x": {"magnification": 20, "na": 0.5, "pixel_size_um": 0.3}}}))
    cfg = tmp_path / "lab.cfg"
    cfg.write_text(FOREIGN_CFG)
    with open_microscope(str(cfg)) as scope:
        w = MainWindow(scope, modal_errors=False, load_model=False)
        qtbot.addWidget(w)
        panel = w.panels["Objectives"]
        table = panel.editor.table
        rows = [table.item(r, 0).text() for r in range(table.rowCount())]
        assert rows == ["Nikon 10X S Fluor", "Nikon 40X Plan Fluor ELWD", "Objective-2",
                        "Other stand 20x"]  # no simulator defaults on a foreign stand
        qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
        assert w.reporter.messages == []
        saved = json.loads((home / "objectives.json").read_text())["objectives"]
        assert {"Other stand 20x", "Nikon 40X Plan Fluor ELWD"} <= set(saved)
        assert saved["Nikon 40X Plan Fluor ELWD"]["pixel_size_um"] == 0.25
        w.close()
