"""A helper thread outlives the widget that started it without taking the process down.

Closing a panel (or the window) while its worker still runs used to destroy the running
QThread with it, which aborts the process ("QThread: Destroyed while thread is still
running", or "pure virtual method called" once the thread emits). The scenario runs in a
fresh interpreter, so the old behaviour shows as a crashed child, not a crashed suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import threading, time
    import shiboken6
    from qtpy.QtWidgets import QApplication, QWidget
    from thinkscope_gui.ui.workers import finish_workers, start_worker
    from thinkscope_gui.ui.enhance_worker import LiveEnhanceWorker

    app = QApplication([])
    owner = QWidget()
    release = threading.Event()
    calls = []

    def job(token, progress):
        release.wait(10)
        progress(1)
        return "result"

    worker = start_worker(owner, job, on_done=calls.append, on_progress=calls.append)
    shiboken6.delete(owner)      # the panel goes away while its worker runs
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)
    release.set()
    deadline = time.time() + 10
    while worker.isRunning() and time.time() < deadline:
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)
    print("callbacks after the owner was gone:", calls)

    # a live worker whose tile outlasts stop()'s wait, then its window is deleted
    window = QWidget()
    live = LiveEnhanceWorker(window)
    live.start()
    live.stop()
    shiboken6.delete(window)
    for _ in range(10):
        app.processEvents()
    print("stuck at exit:", finish_workers(5000))
    print("clean exit")
""")


def test_a_worker_outlives_its_closed_owner() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Destroyed while thread" not in out
    assert "callbacks after the owner was gone: []" in out
    assert "stuck at exit: []" in out
    assert "clean exit" in out
