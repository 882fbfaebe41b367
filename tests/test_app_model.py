"""The app model's actions, headless: what panels call instead of reaching into the window.

A real simulated stand, real jobs on the real runner, a real model file loaded by a real
Enhancer; no Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hardware import open_microscope
from tests.test_ui_support import make_model
from thinkscope_gui.app_model import AppModel, Message, MessageLevel, ModelState, OverlayMode
from thinkscope_gui.jobs import FinishReason, FunctionJob, JobControl


@pytest.fixture
def scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("THINKSCOPE_SETTINGS_DIR", str(tmp_path / "settings"))
    s = open_microscope("sim", sensor=(128, 128), mechanical_delays=False)
    yield s
    s.close()


def held_job(scope: Any, name: str) -> tuple[FunctionJob, threading.Event, threading.Event]:
    """A stand job that runs until ``release`` is set; ``inside`` says it runs."""
    inside, release = threading.Event(), threading.Event()

    def body(ctl: JobControl) -> None:
        inside.set()
        while not release.wait(0.01):
            ctl.checkpoint()

    return FunctionJob(name, body, scope=scope, needs_stand=True), inside, release


def _until(cond: Any, timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


def test_report_notify_and_status_are_messages(scope: Any) -> None:
    app = AppModel(scope)
    said: list[Message] = []
    app.on("message", said.append)
    app.report("Save plan", "disk full")
    app.notify("Acquisition", "an earlier store keeps its name")
    app.show_status("Objectives not calibrated (Objectives panel)", 30000)
    assert [(m.level, m.title, m.detail) for m in said] == [
        (MessageLevel.ERROR, "Save plan", "disk full"),
        (MessageLevel.NOTICE, "Acquisition", "an earlier store keeps its name"),
        (MessageLevel.STATUS, "", "Objectives not calibrated (Objectives panel)")]
    assert said[2].timeout_ms == 30000


def test_try_start_job_is_refused_while_the_lease_is_held(scope: Any) -> None:
    app = AppModel(scope)
    said: list[Message] = []
    busy: list[object] = []
    app.on("message", said.append)
    app.on("stand_busy", busy.append)
    calib, inside, release = held_job(scope, "calibration")
    assert app.try_start_job(calib, "Calibration")
    # said on this thread before try_start_job returned: manual control goes off at once
    assert busy == ["calibration"] and app.stand_holder == "calibration"
    assert not app.manual_control_enabled
    try:
        assert inside.wait(10)
        ran: list[str] = []
        second = FunctionJob("acquisition", lambda ctl: ran.append("ran"), scope=scope,
                             needs_stand=True)
        assert not app.try_start_job(second, "Acquisition")
        assert said and said[-1].level == MessageLevel.ERROR
        assert said[-1].title == "Acquisition" and "busy with calibration" in said[-1].detail
        # a job that needs no stand (training, enhancing) runs alongside
        side = FunctionJob("enhance", lambda ctl: 42)
        assert app.try_start_job(side, "Enhance")
    finally:
        release.set()
    assert app.runner.wait(10).reason == FinishReason.COMPLETED
    _until(lambda: side.result is not None)  # it runs on its own runner, alongside
    assert ran == [] and side.result == 42
    _until(lambda: len(busy) == 2)  # said on the job's thread just after wait() returns
    assert busy == ["calibration", None] and app.manual_control_enabled
    again = FunctionJob("acquisition", lambda ctl: "done", scope=scope, needs_stand=True)
    assert app.try_start_job(again, "Acquisition")
    assert app.runner.wait(10).reason == FinishReason.COMPLETED and again.result == "done"
    assert [m.title for m in said] == ["Acquisition"]  # refused once, said once


def _loader(app: AppModel, scope: Any) -> list[str | None]:
    """What the window's model manager does, with the real Enhancer: load what the app
    asks for, judge it against the current objective, publish the state."""
    from thinkscope_gui.learn import Enhancer, ModelMismatchError

    asked: list[str | None] = []

    def load(path: str | None) -> None:
        asked.append(path)
        enhancer = Enhancer.load(path, device="cpu")
        try:
            enhancer.check_objective(scope.profile(scope.objective()))
        except ModelMismatchError as exc:
            name = Path(str(path)).name
            app.set_model(path, False, str(exc), f"{name}: disabled, {exc}")
        else:
            app.set_model(path, True, summary=f"{Path(str(path)).name} (x{enhancer.scale:g})")

    app.on("model_requested", load)
    return asked


def test_model_request_becomes_the_app_models_state(scope: Any, tmp_path: Path) -> None:
    app = AppModel(scope)
    states: list[ModelState] = []
    app.on("model", states.append)
    asked = _loader(app, scope)
    model = make_model(tmp_path / "m40.safetensors", scope)  # 40x -> 100x
    assert app.model == ModelState() and app.model.summary == "none"

    scope.set_objective("40x")
    app.request_model(model)
    assert asked == [str(model)]
    assert app.model.path == str(model) and app.model.usable and app.model.reason == ""
    assert app.model.summary == "m40.safetensors (x2.5)"
    app.set_overlay(mode=OverlayMode.LENS)  # a usable model: enhancing is allowed
    assert app.overlay.enhancing

    scope.set_objective("10x")  # the model is for 40x: disabled, with the reason
    app.request_model(model)
    assert not app.model.usable and "expects the 40x objective" in app.model.reason
    assert "disabled" in app.model.summary
    assert not app.overlay.enhancing  # an unusable model ended the overlay
    with pytest.raises(ValueError, match="expects the 40x"):
        app.set_overlay(mode=OverlayMode.LENS)
    n = len(states)
    app.request_model(model)  # the same answer again: no event
    assert len(states) == n == 2 and states[-1] is app.model


def test_frames_moves_and_engine_readiness(scope: Any) -> None:
    app = AppModel(scope)
    frames: list[tuple[Any, float]] = []
    app.events.frame.connect(lambda image, px: frames.append((image, px)))
    image = scope.snap()
    app.show_frame(image, scope.pixel_size_um())
    assert frames[0][0] is image and frames[0][1] == pytest.approx(scope.pixel_size_um())
    assert isinstance(frames[0][0], np.ndarray)

    moving = [False]
    assert not app.manual_move_running()
    app.watch_manual_moves(lambda: moving[0])
    moving[0] = True
    assert app.manual_move_running()

    ready: list[bool] = []
    app.on("engines_ready", lambda: ready.append(True))
    assert not app.engines_ready
    app.set_engines_ready()
    app.set_engines_ready()
    assert app.engines_ready and ready == [True]
