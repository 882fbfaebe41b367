"""The scripted operator session of issue 13, clicked through the real window.

One script, two users: ``tests/test_ui_watchdog.py`` runs it and asserts the GUI thread's
own work in any stall (a property of our code), and ``main.py bench session`` runs it in
a fresh process and prints the wall-clock worst stall (a speed figure, which also counts
waiting for a CPU on a loaded machine, so it is measured here and not asserted).

The session goes live, activates a model, enhances, changes objective (oil → dry
confirmed in the real dialog), moves the stage, starts and stops an acquisition and a
training run; every step uses the real button where there is one.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication, QMessageBox, QPushButton, QToolBar, QWidget

from .stall_watchdog import StallWatchdog


class SessionError(RuntimeError):
    """A step of the session did not do what it should (the message names it)."""


def wait_until(pred: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Run the event loop until ``pred()`` holds; SessionError naming ``what`` if never."""
    end = time.perf_counter() + timeout_s
    while not pred():
        if time.perf_counter() > end:
            raise SessionError(f"timed out after {timeout_s:g} s waiting for: {what}")
        QTest.qWait(10)


def check(ok: Any, what: str) -> None:
    if not ok:
        raise SessionError(what)


def button(parent: QWidget, text: str) -> QPushButton:
    found = [b for b in parent.findChildren(QPushButton) if b.text() == text]
    check(len(found) == 1, f"one {text!r} button: {[b.text() for b in found]}")
    return found[0]


def click(widget: QWidget) -> None:
    """A real left click, on an enabled and visible widget."""
    check(widget.isEnabled() and widget.isVisible(), f"{widget} can be clicked")
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def answer_next_dialog(answer: QMessageBox.StandardButton) -> list[str]:
    """Click ``answer`` in the next message box that opens (a real click on its button);
    the list fills with the box's text."""
    seen: list[str] = []

    def poll() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text())
            QTest.mouseClick(box.button(answer), Qt.MouseButton.LeftButton)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(20, poll)
    return seen


def choose_objective(window: Any, label: str) -> None:
    """Pick an objective in the selector with the keyboard, as an operator can."""
    combo = window.objective_widget.combo
    combo.setFocus()
    target = combo.findText(label)
    key = Qt.Key.Key_Down if target > combo.currentIndex() else Qt.Key.Key_Up
    for _ in range(abs(target - combo.currentIndex())):  # a declined change resets it
        QTest.keyClick(combo, key)


def run_session(window: Any, model: Path, out_dir: Path, dog: StallWatchdog) -> None:
    """The session, on a live window whose start-up is over; ``dog`` runs from the first
    click to the end, with ``dog.label`` naming the step. ``model`` must be listed by the
    Models panel and be for 40x; outputs go to ``out_dir``."""
    import numpy as np

    from thinkscope_gui.learn.train import TrainConfig
    from thinkscope_gui.pairs.plan import AcquisitionPlan, AutofocusSettings

    models = window.panels["Models"]
    click(button(models, "Refresh"))
    wait_until(lambda: window.live.frames_shown > 2, 10, "live frames")
    toolbar = window.findChild(QToolBar, "cameraToolbar")
    dog.start()

    dog.label = "live off/on"
    click(toolbar.widgetForAction(window.act_live))
    check(not window.scope.is_live(), "live view off")
    click(toolbar.widgetForAction(window.act_live))
    check(window.scope.is_live(), "live view on")

    dog.label = "activate model"
    row = [e.path for e in models.entries].index(model)
    models.table.selectRow(row)
    click(button(models, "Activate"))
    wait_until(lambda: window.models.path == model and window.models.usable, 30,
               "the model active")
    check("active" in models.status_of(model), "the Models panel says active")

    dog.label = "enhance"
    window.set_overlay_mode("enhancement lens")
    click(toolbar.widgetForAction(window.act_enhance))
    check(window.live.enhancing, "enhancing")
    n = window.live.frames_enhanced
    wait_until(lambda: window.live.frames_enhanced > n + 3, 30, "enhanced frames")

    dog.label = "objective 40x -> 100x"
    choose_objective(window, "100x")
    wait_until(lambda: window.scope.objective() == "100x"
               and window.objective_widget.combo.isEnabled(), 30, "100x in place")
    wait_until(lambda: not window.models.usable, 5, "the 40x model disabled at 100x")
    check(not window.live.enhancing, "enhancement off at 100x")

    dog.label = "objective 100x -> 40x (oil to dry, confirmed)"
    texts = answer_next_dialog(QMessageBox.StandardButton.Yes)
    choose_objective(window, "40x")
    wait_until(lambda: window.scope.objective() == "40x"
               and window.objective_widget.combo.isEnabled(), 30, "40x in place")
    check(texts and "oil" in texts[0], f"the oil → dry question was asked: {texts}")
    wait_until(lambda: window.models.usable, 5, "the model usable again at 40x")

    dog.label = "stage buttons"
    x0, y0 = window.scope.xy()
    window.stage_widget.step.setValue(25.0)
    click(button(window.stage_widget, "→"))
    click(button(window.stage_widget, "↓"))
    wait_until(lambda: np.allclose(window.scope.xy(), (x0 + 25.0, y0 + 25.0))
               and not window.stage_widget.mover.busy(), 10, "the stage moved by 25 µm")

    dog.label = "acquisition start/stop"
    acq = window.panels["Acquisition"]
    acq.set_plan(AcquisitionPlan(grid=(2, 2), center_um=(5000.0, 0.0),
                                 output=str(out_dir / "wd_pairs.h5"),
                                 autofocus=AutofocusSettings(search_range_um=4.0,
                                                             coarse_step_um=1.0,
                                                             fine_step_um=0.5)))
    click(acq.start_button)
    check(acq.running(), "the acquisition running")
    # the first events follow a tile's autofocus sweep of fresh specimen renders: ~20-30 s
    # on 2 busy cores with the stack sampler running, so the wait is generous (a step that
    # never comes still fails; stalls are what the session measures)
    wait_until(lambda: len(acq.events) >= 2, 90, "acquisition events")
    click(acq.stop_button)
    wait_until(lambda: not acq.running(), 60, "the acquisition stopped")
    check(acq.events[-1].kind in ("finished", "failed"), f"it ended: {acq.events[-1]}")
    wait_until(window.scope.is_live, 5, "live view restored")

    dog.label = "training start/stop"
    train = window.panels["Training"]
    train.form.set_value(TrainConfig(sim_pairs=6, sim_tile=64, epochs=3, steps_per_epoch=4,
                                     batch_size=2, patch=16, threads=1, max_val_tiles=2,
                                     out=str(out_dir / "wd.safetensors")))
    click(train.start_button)
    check(train.running(), "training running")
    wait_until(lambda: train.last_status is not None
               and train.last_status.state == "training", 60, "training steps")
    click(train.start_button)
    wait_until(lambda: not train.running(), 60, "training stopped")
    wait_until(lambda: train._preview_worker is None, 60, "the training preview done")
    QTest.qWait(300)
    dog.stop()


def stall_line(dog: StallWatchdog) -> str:
    """The figures in one line, with the load they were taken under."""
    stalls = ", ".join(f"{s * 1000:.0f} ms ({label})" for label, s in dog.stalls)
    pressure = dog.cpu_pressure()
    waiting = "" if pressure is None else f", CPU pressure {pressure * 100:.0f} %"
    return (f"worst stall {dog.worst_s * 1000:.0f} ms (wall clock), GUI-thread work "
            f"{dog.worst_busy_s * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores{waiting}; over 50 ms: [{stalls}]")


def bench_session(size: int = 256, explain: bool = False, log: Any = print) -> dict[str, Any]:
    """``main.py bench session``: the session in the real window (offscreen), in its own
    temporary home; the worst GUI stall, wall clock and the GUI thread's own work."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
    tmp = Path(tempfile.mkdtemp(prefix="thinkscope-bench-session-"))
    os.environ["THINKSCOPE_HOME"] = str(tmp / "home")  # never the operator's models
    os.environ["THINKSCOPE_SETTINGS_DIR"] = str(tmp / "settings")

    from hardware import open_microscope
    from thinkscope_gui.learn.meta import MODELS_DIR

    from .main_window import MainWindow
    from .stall_sampler import StackSampler, format_stalls

    app = QApplication.instance() or QApplication([])
    sampler = StackSampler().start() if explain else None
    with open_microscope("sim", sensor=(size, size), mechanical_delays=False) as scope:
        win = MainWindow(scope, modal_errors=False, load_model=False)
        win.show()
        win.set_live(True)
        try:
            wait_until(lambda: win.ready, 120, "start-up")
            dog = StallWatchdog(win)
            run_session(win, MODELS_DIR / "default_fast.safetensors", tmp, dog)
        finally:
            if sampler is not None:
                sampler.stop()
            win.close()
            app.processEvents()
    if sampler is not None:
        log(format_stalls(sampler, dog.spans))
    line = stall_line(dog)
    pressure = dog.cpu_pressure()
    log(f"session ({size}x{size} sensor): {line}")
    return {"sensor": f"{size}x{size}", "worst_stall_ms": round(dog.worst_s * 1000),
            "gui_thread_work_ms": round(dog.worst_busy_s * 1000),
            "load_average": round(os.getloadavg()[0], 1),
            "cpu_pressure_percent": None if pressure is None else round(100 * pressure, 1),
            "stalls_over_50_ms": [(label, round(s * 1000)) for label, s in dog.stalls]}


def bench_target(args: Any) -> dict[str, Any]:
    """``main.py bench session``: the options of the bench subcommand -> bench_session
    (``--size`` is the camera's; the watchdog test's sensor is 256²)."""
    return bench_session(size=args.size, explain=args.explain,
                         log=(lambda *_: None) if args.json else print)
