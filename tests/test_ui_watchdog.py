"""An event-loop watchdog follows a scripted session clicked through the real window.

After start-up (background imports done), the GUI thread must never stall for more than
100 ms while the operator goes live, enhances, changes objective (oil → dry confirmed in
the real dialog), moves the stage, starts and stops an acquisition and a training run.
Every step uses the real button where there is one (the script is
thinkscope_gui.ui.bench_session.run_session, shared with ``main.py bench session``).

Two figures: the wall-clock gap (what the operator feels) and the CPU time the GUI
thread itself spent within a gap (what our code did on it). The second is asserted; the
first is printed here and measured by ``main.py bench session`` (a speed figure, which
depends on what else the host runs: on the shared 2-core machine it swings from under
100 ms to 150 ms and more with the load, so asserting it would make the test flaky).
THINKSCOPE_STALL_MS sets the limit. With ``-s`` every stall over 50 ms is explained by a
stack sampler (thinkscope_gui.ui.stall_sampler): what each thread was doing during it,
and how much of it the GUI thread's own work was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_ui_support import make_model
from thinkscope_gui.ui import bench_session as session
from thinkscope_gui.ui.stall_watchdog import StallWatchdog

pytest_plugins = ["tests.test_ui_support"]

STALL_LIMIT_S = float(os.environ.get("THINKSCOPE_STALL_MS", "100")) / 1000.0


# the session's click helpers, in the (qtbot, ...) form other GUI tests import from here
def click(qtbot: Any, widget: Any) -> None:
    session.click(widget)


def answer_next_dialog(qtbot: Any, answer: Any) -> list[str]:
    return session.answer_next_dialog(answer)


def choose_objective(qtbot: Any, window: Any, label: str) -> None:
    session.choose_objective(window, label)


button = session.button


@pytest.fixture
def stack_sampler() -> Iterator[Any]:
    """All threads' stacks every 5 ms, stopped even when the test fails."""
    from thinkscope_gui.ui.stall_sampler import StackSampler

    sampler = StackSampler().start()
    yield sampler
    sampler.stop()


def test_no_gui_stall_through_a_session(qtbot: Any, window: Any, ui_env: Path,
                                        stack_sampler: Any) -> None:
    from thinkscope_gui.ui.stall_sampler import format_stalls

    qtbot.waitUntil(lambda: window.ready, timeout=60000)  # start-up is over
    model = make_model(ui_env / "home" / "models" / "m40.safetensors", window.scope)
    dog = StallWatchdog(window)
    session.run_session(window, model, ui_env, dog)  # raises SessionError naming a failed step
    print("\n" + format_stalls(stack_sampler, dog.spans))
    print(session.stall_line(dog))
    assert dog.worst_busy_s < STALL_LIMIT_S, (dog.worst_busy_s, dog.stalls)
    # the wall-clock figure also counts waiting for the CPU and for worker threads holding
    # the GIL: a speed target, printed here and measured by `main.py bench session`
    # rather than asserted in a unit test


def test_deferred_start_builds_training_panel_later(qtbot: Any, scope: Any) -> None:
    """run_gui's start-up: the window opens without the learning engine, which is
    imported in the background; then the Training panel appears in its dock."""
    from thinkscope_gui.ui.main_window import MainWindow

    w = MainWindow(scope, modal_errors=False, load_model=False, defer_heavy=True)
    qtbot.addWidget(w)
    w.show()
    assert getattr(w.panels["Training"], "deferred", False)
    w.start_background()
    qtbot.waitUntil(lambda: w.ready, timeout=60000)
    panel = w.panels["Training"]
    assert hasattr(panel, "start_button")
    assert w._docks["Training"].widget().widget() is panel
    w.close()
