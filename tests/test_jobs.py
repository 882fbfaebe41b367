"""The job runner, the stand lease and the app model, headless on the simulator."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from hardware import open_microscope
from thinkscope_gui.app_model import AppModel, OverlayMode
from thinkscope_gui.jobs import (
    Cancelled,
    FinishReason,
    FunctionJob,
    JobControl,
    JobRunner,
    RunState,
    StandBusy,
    lease_for,
)
from thinkscope_gui.pairs.autofocus import autofocus_job
from thinkscope_gui.pairs.calibration import calibration_job
from thinkscope_gui.pairs.engine import AcquisitionEngine
from thinkscope_gui.pairs.plan import AcquisitionPlan, AutofocusSettings
from thinkscope_gui.pairs.store import PairStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("THINKSCOPE_SETTINGS_DIR", str(tmp_path / "settings"))
    return tmp_path / "home"


@pytest.fixture
def scope(home: Path):
    s = open_microscope("sim", sensor=(128, 128))
    yield s
    s.close()


# --- the runner's core -------------------------------------------------------------------
def test_control_pauses_resumes_cancels_and_estimates() -> None:
    ctl = JobControl("demo", can_pause=True)
    ctl.begin(total=4)
    ctl.advance(2)
    snap = ctl.snapshot()
    assert snap.state == RunState.RUNNING and snap.fraction == 0.5
    assert snap.eta_s is not None and snap.eta_s == pytest.approx(snap.elapsed_s, rel=0.5)
    assert ctl.pause() and ctl.state == RunState.PAUSED
    released = threading.Event()

    def worker() -> None:
        ctl.checkpoint()  # blocks while paused
        released.set()

    t = threading.Thread(target=worker)
    t.start()
    assert not released.wait(0.3)
    ctl.resume()
    assert released.wait(5)
    t.join()
    ctl.cancel()
    assert ctl.state == RunState.CANCELLING
    with pytest.raises(Cancelled):
        ctl.checkpoint()
    assert not JobControl("x").pause()  # a job that cannot pause says so


@pytest.mark.parametrize(("body", "reason"), [
    (lambda ctl: 42, FinishReason.COMPLETED),
    (lambda ctl: (_ for _ in ()).throw(Cancelled()), FinishReason.CANCELLED),
    (lambda ctl: (_ for _ in ()).throw(OSError("disk gone")), FinishReason.FAILED),
])
def test_function_job_finishes_by_how_its_body_ended(body, reason) -> None:
    job = FunctionJob("j", body)
    st = JobRunner().run(job)
    assert st.state == RunState.FINISHED and st.reason == reason
    if reason == FinishReason.FAILED:
        assert "OSError: disk gone" in st.message
    assert (job.result == 42) == (reason == FinishReason.COMPLETED)


def test_an_error_raised_after_cancel_counts_as_cancelled() -> None:
    """A device interrupted mid-move by the Stop raises its own error: still cancelled."""
    def body(ctl: JobControl) -> None:
        ctl.cancel()
        raise RuntimeError("stage move aborted")

    assert JobRunner().run(FunctionJob("j", body)).reason == FinishReason.CANCELLED


# --- one lease on the stand --------------------------------------------------------------
def _slow_autofocus() -> AutofocusSettings:
    return AutofocusSettings(search_range_um=40.0, coarse_step_um=0.5)


def test_while_calibrating_acquisition_is_refused(scope, tmp_path: Path) -> None:
    app = AppModel(scope)
    gate = threading.Event()
    release = threading.Event()

    def calib(ctl: JobControl) -> None:  # stands in for the slow part of a calibration
        gate.set()
        while not release.wait(0.05):
            ctl.checkpoint()

    app.start_job(FunctionJob("calibration", calib, scope=scope, needs_stand=True))
    assert gate.wait(10)
    engine = AcquisitionEngine(AcquisitionPlan(grid=(1, 1), output=str(tmp_path / "a.h5")),
                               scope)
    other = JobRunner()  # a second runner (another panel, another thread): same lease
    with pytest.raises(StandBusy, match="busy with calibration"):
        other.start(engine)
    with pytest.raises(StandBusy, match="busy with calibration"):
        app.start_job(engine)  # the app's own stand runner says the same
    with pytest.raises(StandBusy, match="busy with calibration"):
        app.set_xy(10.0, 10.0)
    assert not app.manual_control_enabled
    app.cancel_job()
    assert app.runner.wait(10).reason == FinishReason.CANCELLED
    assert app.manual_control_enabled and lease_for(scope).holder is None
    assert engine.state == RunState.IDLE and not (tmp_path / "a.h5").exists()


def test_real_calibration_job_holds_the_lease_and_cancels(scope) -> None:
    start = (scope.objective(), scope.xy(), scope.z())
    runner = JobRunner()
    holders: list[str | None] = []
    job = calibration_job(scope, objectives=["40x"])
    job_progress = job.control.progress

    def progress(*a, **k) -> None:  # note who holds the stand on the job's own thread
        holders.append(lease_for(scope).holder)
        job_progress(*a, **k)
        if len(holders) == 2:
            runner.cancel()

    job.control.progress = progress  # type: ignore[method-assign]
    st = runner.run(job)
    assert st.reason == FinishReason.CANCELLED, st.message
    assert holders and set(holders) == {"calibration"}
    assert (scope.objective(), scope.xy(), scope.z()) == start  # restored, Z included
    assert lease_for(scope).holder is None


def test_while_acquiring_calibration_and_manual_moves_are_refused(scope, tmp_path) -> None:
    app = AppModel(scope)
    out = tmp_path / "acq.h5"
    seen: list[str] = []
    engine = AcquisitionEngine(AcquisitionPlan(grid=(2, 1), output=str(out)), scope)

    def on_event(ev) -> None:
        if ev.kind == "tile_done" and not seen:
            seen.append("x")
            with pytest.raises(StandBusy, match="busy with acquisition") as exc:
                JobRunner().start(calibration_job(scope))
            seen.append(str(exc.value))
            for act in (lambda: app.set_xy(0, 0), lambda: app.set_z(1.0),
                        lambda: app.set_objective("10x"), lambda: app.set_exposure(5),
                        lambda: app.snap(), lambda: app.set_live(True)):
                with pytest.raises(StandBusy):
                    act()
            seen.append("refused")
            app.cancel_job()

    engine.on_event = on_event
    busy: list[object] = []
    app.on("stand_busy", busy.append)
    app.start_job(engine)
    st = app.runner.wait(120)
    assert seen[-1] == "refused", seen
    assert st.reason == FinishReason.CANCELLED
    assert busy == ["acquisition", None]
    with PairStore(out) as s:  # the store was not touched by the refused jobs
        assert len(s.pair_ids(False)) == engine.status().new_pairs
    app.set_xy(1.0, 2.0)  # free again
    assert scope.xy() == pytest.approx((1.0, 2.0), abs=0.01)


def test_autofocus_job_cancelled_midway_ends_cancelled(scope) -> None:
    runner = JobRunner()
    moves = [0]

    def on_z(_z: float) -> None:
        moves[0] += 1
        if moves[0] == 3:
            runner.cancel()

    scope.events.z_changed.connect(on_z)
    try:
        st = runner.run(autofocus_job(scope, _slow_autofocus()))
    finally:
        scope.events.z_changed.disconnect(on_z)
    assert st.reason == FinishReason.CANCELLED and st.needs_stand


def test_runner_pauses_live_for_a_stand_job_and_restores_it(scope) -> None:
    app = AppModel(scope)
    app.set_live(True)
    live_during: list[bool] = []

    def body(ctl: JobControl) -> None:
        live_during.append(scope.is_live() or app.live)

    app.start_job(FunctionJob("autofocus", body, scope=scope, needs_stand=True))
    app.runner.wait(10)
    assert live_during == [False] and app.live and scope.is_live()
    app.set_live(False)
    # training/enhancing need no lease: live stays on and manual control stays free
    app.set_live(True)
    app.start_job(FunctionJob("enhance", lambda ctl: live_during.append(app.live))).wait(10)
    assert live_during[-1] is True and app.manual_control_enabled
    app.set_live(False)


# --- the app model -----------------------------------------------------------------------
def test_app_model_holds_one_copy_of_each_state(scope) -> None:
    app = AppModel()
    got: dict[str, list[object]] = {n: [] for n in ("microscope", "model", "overlay", "stores")}
    for n, lst in got.items():
        app.on(n, lst.append)
    app.microscope = scope
    with pytest.raises(ValueError, match="no model loaded"):
        app.set_overlay(mode=OverlayMode.BLEND)
    app.set_model("m.safetensors", True)
    app.set_overlay(mode="blend", blend=2.0)
    assert app.overlay.enhancing and app.overlay.blend == 1.0
    app.set_model("other.safetensors", False, "made for another objective pair")
    assert app.overlay.mode == OverlayMode.OFF  # an unusable model stops enhancing
    assert app.model.reason == "made for another objective pair"
    app.add_store("a.h5")
    app.add_store("a.h5")
    app.add_store("b.h5")
    assert got["microscope"] == [scope] and got["stores"][-1] == ("a.h5", "b.h5")
    assert [o.mode for o in got["overlay"]] == [OverlayMode.BLEND, OverlayMode.OFF]
    img = app.snap()
    assert isinstance(img, np.ndarray) and img.shape[:2] == (128, 128)


def test_training_runs_as_a_job_without_the_lease(scope, tmp_path) -> None:
    pytest.importorskip("torch")
    from tests.learn_helpers import make_folder_pairs
    from thinkscope_gui.learn.train import TrainConfig, Trainer

    pairs = make_folder_pairs(tmp_path / "pairs")
    cfg = TrainConfig(folders=[str(pairs)], epochs=50, steps_per_epoch=5, batch_size=2,
                      patch=16, out=str(tmp_path / "m.safetensors"), threads=1)
    statuses: list[object] = []

    def on_event(st) -> None:
        statuses.append(st.state)
        if st.state == "training" and st.step >= 2:
            trainer.cancel()

    trainer = Trainer(cfg, on_event)
    runner = JobRunner()
    runner.start(trainer)
    app = AppModel(scope)
    app.set_xy(3.0, 4.0)  # the stand stays free while training
    st = runner.wait(120)
    assert st.reason == FinishReason.CANCELLED and not st.needs_stand, st.message
    assert st.total == 250 and 0 < st.done < 250


def test_there_is_one_cancellation_exception() -> None:
    """No module defines its own cancel exception: every layer raises jobs.Cancelled."""
    import ast

    root = Path(__file__).resolve().parent.parent
    own = []
    for path in [*root.glob("thinkscope_gui/**/*.py"), *root.glob("hardware/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and "cancel" in node.name.lower() and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Exception", "Error"))
                    for b in node.bases):
                own.append(f"{path.relative_to(root)}: {node.name}")
    assert own == ["thinkscope_gui/jobs.py: Cancelled"], own


def test_runners_share_ready_workers_and_run_jobs_side_by_side() -> None:
    """start() hands a job to an idle worker (no wait for a new thread on the caller's,
    often the GUI, thread); three jobs that must all be running at once each get a
    worker, named after the job; a job that raises leaves its worker usable."""
    meet = threading.Barrier(4, timeout=30)
    names: list[str] = []

    def body(control: JobControl) -> None:
        names.append(threading.current_thread().name)
        meet.wait()  # fails unless all three jobs run at the same time

    runners = [JobRunner() for _ in range(3)]
    for i, r in enumerate(runners):
        r.start(FunctionJob(f"side{i}", body))
    meet.wait()
    assert [r.wait(30).reason for r in runners] == [FinishReason.COMPLETED] * 3
    assert sorted(names) == ["job-side0", "job-side1", "job-side2"]

    def boom(control: JobControl) -> None:
        raise RuntimeError("broken job")

    assert runners[0].run(FunctionJob("boom", boom)).reason == FinishReason.FAILED
    assert runners[0].run(FunctionJob("after", lambda c: None)).reason == FinishReason.COMPLETED
