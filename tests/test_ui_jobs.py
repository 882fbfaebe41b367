"""The real Stop button at random moments, and one job on the stand, through real clicks.

Why the hand-shake: the moment (a z step inside autofocus, the objective swap, a 40x or
100x tile move) is seen on the engine's thread; that thread waits there while the test
clicks Stop on the GUI thread, so the click lands exactly inside that step.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_ui_acquisition import _small_plan, click

pytest_plugins = ["tests.test_ui_support"]


@contextlib.contextmanager
def held_at_first_z_step(scope: Any) -> Iterator[threading.Event]:
    """Whatever drives the stand waits at its first z step (inside its autofocus) until
    the block ends; the event says it got there."""
    inside, gate = threading.Event(), threading.Event()

    def hold(_z: float) -> None:
        inside.set()
        gate.wait(30)

    scope.events.z_changed.connect(hold)
    try:
        yield inside
    finally:
        gate.set()
        scope.events.z_changed.disconnect(hold)


def _plan(panel: Any, out: Path) -> None:
    _small_plan(panel, out)
    panel.set_plan(panel.plan().model_copy(update={"grid": (2, 1)}))


@pytest.mark.parametrize("moment", ["lr_tile", "autofocus", "swap", "hr_tile"])
def test_stop_button_at_random_moments_ends_cancelled(qtbot: Any, window: Any, ui_env: Path,
                                                      moment: str) -> None:
    panel = window.panels["Acquisition"]
    scope = window.scope
    _plan(panel, ui_env / f"{moment}.h5")
    rng = random.Random(moment)
    nth = {"lr_tile": 2, "autofocus": rng.randint(2, 10), "swap": 1, "hr_tile": 2}[moment]
    seen, at_moment, clicked = [0], threading.Event(), threading.Event()

    def hit() -> None:
        seen[0] += 1
        if seen[0] == nth:
            at_moment.set()
            clicked.wait(30)  # hold the engine inside this step until Stop was clicked

    def phase() -> str:
        engine = panel.engine
        return engine.status().phase if engine is not None else ""

    hooks = {
        "z_changed": lambda _z: moment == "autofocus" and phase() == "lr" and hit(),
        "xy_changed": lambda _x, _y: (moment == "lr_tile" and phase() == "lr"
                                      or moment == "hr_tile" and phase() == "hr") and hit(),
        "objective_changed": lambda _l: moment == "swap" and phase() == "swap" and hit(),
    }
    for name, fn in hooks.items():
        getattr(scope.events, name).connect(fn)
    try:
        click(qtbot, panel.start_button)
        # while the run holds the stand, manual control is off
        assert not window.stage_widget.isEnabled() and not window.act_snap.isEnabled()
        assert not window.act_live.isEnabled() and not window.exposure_widget.isEnabled()
        qtbot.waitUntil(at_moment.is_set, timeout=60000)
        click(qtbot, panel.stop_button)
        clicked.set()
        qtbot.waitUntil(lambda: not panel.running(), timeout=60000)
    finally:
        clicked.set()
        for name, fn in hooks.items():
            getattr(scope.events, name).disconnect(fn)
    last = panel.events[-1]
    assert last.kind == "finished" and last.status.cancelled, panel.eta.text()
    kept = last.status.new_pairs
    assert panel.eta.text().startswith(f"cancelled: {kept} pair(s)")
    assert not any("failed" in m.lower() for m in window.reporter.messages)
    if moment == "hr_tile":
        assert kept == 1 and "focus" in panel.last_pair.text()
        assert "registration correlation" in panel.last_pair.text()
    qtbot.waitUntil(lambda: window.stage_widget.isEnabled(), timeout=5000)
    qtbot.waitUntil(scope.is_live, timeout=5000)  # the runner restored live view


def test_one_job_on_the_stand_by_clicks(qtbot: Any, window: Any, ui_env: Path) -> None:
    acq = window.panels["Acquisition"]
    obj = window.panels["Objectives"]
    obj.confirm = lambda text: True  # the oil -> dry question: answered yes
    _plan(acq, ui_env / "lease.h5")
    with held_at_first_z_step(window.scope):
        click(qtbot, acq.start_button)
        click(qtbot, obj.calib_button)
    assert obj._worker is None and obj.calib_button.text() == "Calibrate"
    assert any("busy with acquisition" in m for m in window.reporter.messages)
    click(qtbot, acq.stop_button)
    qtbot.waitUntil(lambda: not acq.running(), timeout=60000)
    assert acq.events[-1].status.cancelled


def test_while_calibrating_start_acquisition_is_refused(qtbot: Any, window: Any,
                                                         ui_env: Path) -> None:
    acq = window.panels["Acquisition"]
    obj = window.panels["Objectives"]
    obj.confirm = lambda text: True  # the oil -> dry question: answered yes
    _plan(acq, ui_env / "refused.h5")
    with held_at_first_z_step(window.scope) as inside:
        click(qtbot, obj.calib_button)
        qtbot.waitUntil(inside.is_set, timeout=30000)
        assert not window.objective_widget.isEnabled() and not window.focus_widget.z.isEnabled()
        click(qtbot, acq.start_button)
        assert not acq.running() and not (ui_env / "refused.h5").exists()
        assert any("busy with calibration" in m for m in window.reporter.messages)
        click(qtbot, obj.calib_button)  # "Stop calibration"
    qtbot.waitUntil(lambda: obj._worker is None, timeout=60000)
    assert obj.status.text() == "calibration cancelled"
    qtbot.waitUntil(lambda: window.objective_widget.isEnabled(), timeout=5000)


def test_manual_autofocus_is_a_stand_job_and_cancel_ends_cancelled(
        qtbot: Any, window: Any, ui_env: Path) -> None:
    acq = window.panels["Acquisition"]
    focus = window.focus_widget
    _plan(acq, ui_env / "af.h5")
    with held_at_first_z_step(window.scope) as inside:
        click(qtbot, focus.af_button)
        qtbot.waitUntil(inside.is_set, timeout=30000)
        assert window.app.stand_holder == "autofocus"
        assert not focus.z.isEnabled() and focus.af_button.text() == "Cancel AF"
        click(qtbot, acq.start_button)
        assert not acq.running()
        assert any("busy with autofocus" in m for m in window.reporter.messages)
        click(qtbot, focus.af_button)  # Cancel AF, inside a z step of the scan
    qtbot.waitUntil(lambda: not focus.is_running(), timeout=30000)
    assert focus.af_status.text() == "cancelled"
    qtbot.waitUntil(lambda: focus.z.isEnabled(), timeout=5000)
    assert not any("Autofocus failed" in m for m in window.reporter.messages)
