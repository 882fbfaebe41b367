"""Stop at random moments during an acquisition on the simulator: always "cancelled".

Why these moments: a Stop that lands inside autofocus used to end "failed" (the engine
caught only its own cancel exception). Cancels here come from the stand's own events on
the engine's thread (a z move inside autofocus, the objective swap, an XY move of a 40x or
100x tile), at a seeded random occurrence, and from another thread after a random delay.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from thinkscope_gui.jobs import FinishReason, JobRunner, RunState
from thinkscope_gui.pairs.engine import (
    AcquisitionEngine,
    AcquisitionEvent,
    Failed,
    Finished,
    PairRejected,
    PairStored,
)
from thinkscope_gui.pairs.plan import AcquisitionPlan
from thinkscope_gui.pairs.store import PairStore

hardware = pytest.importorskip("hardware")
from hardware import open_microscope  # noqa: E402

SENSOR = (128, 128)


@pytest.fixture()
def scope():
    s = open_microscope("sim", sensor=SENSOR)
    yield s
    s.close()


def _cancel_on(engine: AcquisitionEngine, scope, moment: str, nth: int) -> list[str]:
    """Connect a trigger that cancels on the nth matching stand event; returns a log of
    where the cancel landed."""
    seen = [0]
    landed: list[str] = []

    def hit(where: str) -> None:
        seen[0] += 1
        if seen[0] == nth and not landed:
            landed.append(where)
            engine.cancel()

    def on_z(_z: float) -> None:
        phase = engine.status().phase
        # z moves inside a tile's autofocus (the retract of the swap is phase "swap")
        if moment == "autofocus_lr" and phase == "lr":
            hit("autofocus 40x")
        elif moment == "autofocus_hr" and phase == "hr":
            hit("autofocus 100x")

    def on_xy(_x: float, _y: float) -> None:
        phase = engine.status().phase
        if moment == "lr_tiles" and phase == "lr":
            hit("40x tile move")
        elif moment == "hr_tiles" and phase == "hr":
            hit("100x tile move")

    def on_objective(_label: str) -> None:
        if moment == "swap" and engine.status().phase == "swap":
            hit("swap")

    scope.events.z_changed.connect(on_z)
    scope.events.xy_changed.connect(on_xy)
    scope.events.objective_changed.connect(on_objective)
    engine._disconnect = lambda: (  # type: ignore[attr-defined]
        scope.events.z_changed.disconnect(on_z), scope.events.xy_changed.disconnect(on_xy),
        scope.events.objective_changed.disconnect(on_objective))
    return landed


def _check_cancelled(status, events: list[AcquisitionEvent], out: Path) -> None:
    assert status.state == RunState.FINISHED
    assert status.reason == FinishReason.CANCELLED, status.message
    assert not any(isinstance(e, Failed) for e in events), status.message
    assert isinstance(events[-1], Finished) and events[-1].status.cancelled
    stored = [e for e in events if isinstance(e, PairStored | PairRejected)]
    assert status.new_pairs == len(stored) == status.accepted + status.rejected
    assert f"{status.new_pairs} pair(s)" in status.message
    with PairStore(out) as s:
        assert len(s.pair_ids(False)) == status.new_pairs


@pytest.mark.parametrize("moment", ["lr_tiles", "autofocus_lr", "swap", "autofocus_hr",
                                    "hr_tiles"])
def test_stop_at_a_random_step_ends_cancelled_with_pairs_counted(
        tmp_path: Path, scope, moment: str) -> None:
    rng = random.Random(f"{moment}-7")
    nth = {"lr_tiles": rng.randint(1, 2), "autofocus_lr": rng.randint(2, 12), "swap": 1,
           "autofocus_hr": rng.randint(2, 12), "hr_tiles": 2}[moment]
    out = tmp_path / f"{moment}.h5"
    events: list[AcquisitionEvent] = []
    engine = AcquisitionEngine(AcquisitionPlan(grid=(2, 1), output=str(out)), scope,
                               events.append)
    landed = _cancel_on(engine, scope, moment, nth)
    try:
        status = JobRunner().run(engine)
    finally:
        engine._disconnect()  # type: ignore[attr-defined]
    assert landed, f"the cancel trigger for {moment} never fired"
    _check_cancelled(engine.status(), events, out)
    assert status.reason == FinishReason.CANCELLED  # the runner's generic status agrees
    if moment == "hr_tiles":  # the second 100x tile: the first pair was stored
        assert engine.status().new_pairs == 1


def test_stop_from_another_thread_at_random_delays_never_fails(tmp_path: Path, scope) -> None:
    rng = random.Random(11)
    for i in range(4):
        scope.set_objective("40x", confirm_oil_to_dry=True)
        out = tmp_path / f"t{i}.h5"
        events: list[AcquisitionEvent] = []
        engine = AcquisitionEngine(AcquisitionPlan(grid=(2, 1), output=str(out)), scope,
                                   events.append)
        runner = JobRunner()
        runner.start(engine)
        threading.Event().wait(rng.uniform(0.0, 1.5))
        runner.cancel()
        runner.wait(120)
        st = engine.status()
        assert st.reason in (FinishReason.CANCELLED, FinishReason.COMPLETED), st.message
        if st.reason == FinishReason.CANCELLED:
            _check_cancelled(st, events, out)
