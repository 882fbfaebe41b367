"""End-to-end acquisition on the simulated stand (small sensor, 2x2 grids)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation
from skimage.transform import resize

from thinkscope_gui.pairs.engine import AcquisitionEngine, AcquisitionEvent, RunState, TileDone
from thinkscope_gui.pairs.plan import AcquisitionPlan
from thinkscope_gui.pairs.store import PairStore

hardware = pytest.importorskip("hardware")
from hardware import open_microscope  # noqa: E402
from hardware.sim.optics import DEFAULT_SIM_OPTICS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SENSOR = (256, 256)


@pytest.fixture()
def scope():
    s = open_microscope("sim", sensor=SENSOR)
    yield s
    s.close()


def _run(plan: AcquisitionPlan, scope, **kw) -> tuple[object, list[AcquisitionEvent]]:
    events: list[AcquisitionEvent] = []
    status = AcquisitionEngine(plan, scope, events.append, **kw).run()
    return status, events


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted 2x2 run, shared by the checks below."""
    out = tmp_path_factory.mktemp("full") / "pairs.h5"
    s = open_microscope("sim", sensor=SENSOR)
    objective_changes: list[str] = []
    s.events.objective_changed.connect(objective_changes.append)
    try:
        status, events = _run(AcquisitionPlan(grid=(2, 2), output=str(out)), s)
    finally:
        s.close()
    return out, status, events, objective_changes


def test_run_completes_with_lr_first_and_one_swap(full_run) -> None:
    out, status, events, changes = full_run
    assert status.state == RunState.FINISHED, status.message
    assert status.accepted == 4 and status.rejected == 0
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    phases = [e.phase for e in events if isinstance(e, TileDone)]
    assert phases == ["lr"] * 4 + ["hr"] * 4  # objective-major order
    assert changes == ["100x"]  # started on 40x: exactly one objective change
    assert all(v >= 0 for v in status.timings.values()) and status.timings["focus"] > 0
    assert events[3].status.done < events[-1].status.done  # snapshots are frozen copies


def test_measured_offset_matches_simulator_truth(full_run) -> None:
    _, status, _, _ = full_run
    lr, hr = DEFAULT_SIM_OPTICS["40x"], DEFAULT_SIM_OPTICS["100x"]
    dx, dy, dz, rot = status.measured_offset
    # the stage must move by (lr offset - hr offset) for the HR to see the LR centre
    assert dx == pytest.approx(lr.true_offset_xy_um[0] - hr.true_offset_xy_um[0], abs=0.15)
    assert dy == pytest.approx(lr.true_offset_xy_um[1] - hr.true_offset_xy_um[1], abs=0.15)
    assert dz == pytest.approx(hr.true_parfocal_z_um - lr.true_parfocal_z_um, abs=0.2)
    assert rot == pytest.approx(hr.true_rotation_deg - lr.true_rotation_deg, abs=0.05)


def test_every_stored_pair_aligns_within_half_an_hr_pixel(full_run) -> None:
    out, _, _, _ = full_run
    with PairStore(out) as s:
        ids = s.pair_ids()
        assert len(ids) == 4
        for i in ids:
            lr = s.lr(i).astype(np.float64).mean(axis=2)
            hr = s.hr(i).astype(np.float64).mean(axis=2)
            assert hr.shape == (round(lr.shape[0] * s.scale), round(lr.shape[1] * s.scale))
            up = resize(lr, hr.shape, order=3)
            shift, _, _ = phase_cross_correlation(hr, up, upsample_factor=50,
                                                  normalization=None)
            assert np.hypot(*shift) <= 0.5, (i, shift)
            m = s.meta(i)
            assert m["accepted"] and m["correlation"] > 0.95
            assert np.isfinite(m["z_um"]) and m["focus_score"] > 0
        attrs = s.attrs
        assert attrs["lr_objective"] == "40x" and "measured_offset_json" in attrs
        assert '"grid"' in attrs["plan_json"] and "numpy" in attrs["software_json"]


def test_glass_tiles_are_skipped_and_recorded(tmp_path: Path, scope) -> None:
    plan = AcquisitionPlan(positions_um=[(5000.0, 0.0), (5000.0, 8000.0)],
                           output=str(tmp_path / "g.h5"))
    status, events = _run(plan, scope)
    assert status.state == RunState.FINISHED, status.message
    assert status.accepted == 1 and dict(status.reasons) == {"no tissue": 1}
    with PairStore(tmp_path / "g.h5") as s:
        assert s.pair_ids() == [p for p in s.pair_ids(False) if s.meta(p)["tissue"]]
        assert [s.meta(i)["reason"] for i in s.pair_ids(False)].count("no tissue") == 1


def test_cancel_then_resume_without_duplicates(tmp_path: Path, scope) -> None:
    out = tmp_path / "c.h5"
    plan = AcquisitionPlan(grid=(2, 2), output=str(out))
    engine = AcquisitionEngine(plan, scope)

    def on_event(ev: AcquisitionEvent) -> None:
        if isinstance(ev, TileDone) and ev.phase == "hr":
            engine.pause()
            assert engine.state == RunState.PAUSED
            engine.resume()
            engine.cancel()

    engine.on_event = on_event
    engine.start()
    status = engine.wait(120)
    assert status.state == RunState.FINISHED and status.cancelled
    with PairStore(out) as s:
        assert len(s.pair_ids(False)) == 1
    status2, _ = _run(plan, scope, resume=True)
    assert status2.state == RunState.FINISHED and not status2.cancelled
    with PairStore(out) as s:
        tiles = sorted(s.meta(i)["tile_index"] for i in s.pair_ids(False))
    assert tiles == [0, 1, 2, 3]


def test_other_objective_pair_is_refused(tmp_path: Path, scope, full_run) -> None:
    out, _, _, _ = full_run
    import shutil

    copy = tmp_path / "copy.h5"
    shutil.copy(out, copy)
    plan = AcquisitionPlan(grid=(2, 2), lr_objective="10x", output=str(copy))
    status, _ = _run(plan, scope, resume=True)
    assert status.failed
    assert "LR objective" in status.message and "never mixed" in status.message


def test_unwritable_output_fails_with_message(tmp_path: Path, scope) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    plan = AcquisitionPlan(grid=(1, 1), output=str(blocker / "pairs.h5"))
    status, _ = _run(plan, scope)
    assert status.failed and "cannot open" in status.message


def test_cli_acquire_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from thinkscope_gui.cli import acquire

    parser = argparse.ArgumentParser()
    acquire.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli.h5"
    args = parser.parse_args(["acquire", "--grid", "1x1", "--sensor", "256", "--out", str(out),
                              "--quiet", "--center=-3000,100",
                              "--save-plan", str(tmp_path / "plan.json")])
    args.source = "sim"
    assert acquire.run(args) == 0
    saved = AcquisitionPlan.load(tmp_path / "plan.json")
    assert saved.grid == (1, 1) and saved.center_um == (-3000.0, 100.0)
    assert saved.output == str(out)
    text = capsys.readouterr().out
    assert "1 accepted, 0 rejected" in text and "pairs/min" in text
    assert acquire.run(args) == 2  # exists without --resume: refused
    assert "--resume" in capsys.readouterr().err


_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from hardware import open_microscope
    from thinkscope_gui.pairs.engine import AcquisitionEngine
    from thinkscope_gui.pairs.plan import AcquisitionPlan
    scope = open_microscope("sim", sensor=(256, 256))
    plan = AcquisitionPlan(grid=(2, 2), output={out!r})
    def ev(e):
        print(e.kind, getattr(e, "phase", ""), flush=True)
    st = AcquisitionEngine(plan, scope, ev, resume=True).run()
    print("END", st.state.value, st.message, flush=True)
""")


def test_kill9_mid_run_then_resume_matches_uninterrupted(tmp_path: Path, full_run) -> None:
    """SIGKILL the acquisition in the LR phase and again in the HR phase; the file opens
    each time and the resumed result has the same positions as an uninterrupted run."""
    out = tmp_path / "k.h5"
    script = tmp_path / "drive.py"
    script.write_text(_DRIVER.format(root=str(ROOT), out=str(out)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for trigger in ("tile_done lr", "tile_done hr"):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(trigger) or line.startswith("END"):
                break
        proc.send_signal(signal.SIGKILL)  # lands in the middle of the next tile
        proc.wait()
        assert proc.returncode == -signal.SIGKILL  # really killed, not finished
        with PairStore(out) as s:
            tiles = [s.meta(i)["tile_index"] for i in s.pair_ids(False)]
            assert len(tiles) == len(set(tiles))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=240)
    assert "END finished" in done.stdout, done.stdout + done.stderr
    ref, _, _, _ = full_run
    with PairStore(out) as s, PairStore(ref) as r:
        got = sorted((s.meta(i)["tile_index"], tuple(s.meta(i)["stage_xy_um"]))
                     for i in s.pair_ids(False))
        want = sorted((r.meta(i)["tile_index"], tuple(r.meta(i)["stage_xy_um"]))
                      for i in r.pair_ids(False))
        assert got == want
        assert len(s.pair_ids()) == 4
