"""Background work for the GUI: watch a job of the app's runner (JobWatcher), run a
callable off the GUI thread (FunctionWorker, for work that is no job: loading a model),
and bridge engine callbacks to Qt (EventBridge). Cancellation is THE one exception,
:class:`thinkscope_gui.jobs.Cancelled`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QThread, QTimer, Signal

from thinkscope_gui.jobs import Cancelled, FinishReason, RunState

__all__ = ["CancelToken", "Cancelled", "EventBridge", "FunctionWorker", "JobWatcher",
           "finish_workers", "keep_until_finished", "start_worker"]

#: threads still running whose owner may already be gone; a QThread destroyed while it runs
#: aborts the process ("QThread: Destroyed while thread is still running", or "pure virtual
#: method called" when it then emits), so a running thread is never owned by a widget.
_RUNNING: set[QThread] = set()


def keep_until_finished(thread: QThread) -> None:
    """Hold ``thread`` (unparented) until it finishes, then let Qt delete it."""
    if thread.parent() is not None:
        thread.setParent(None)
    if thread in _RUNNING:
        return
    _RUNNING.add(thread)

    def _finished() -> None:
        _RUNNING.discard(thread)
        thread.deleteLater()

    thread.finished.connect(_finished)
    if thread.isFinished():
        _finished()


class CancelToken:
    """Cooperative cancellation shared between the GUI and a worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class FunctionWorker(QThread):
    """Run ``fn(token, progress)`` in a thread; results come back as queued signals."""

    succeeded = Signal(object)
    failed = Signal(str)
    progress = Signal(object)
    cancelled = Signal()

    def __init__(self, fn: Callable[[CancelToken, Callable[[Any], None]], Any],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self.token = CancelToken()

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:  # noqa: D401 - Qt override
        try:
            result = self._fn(self.token, self.progress.emit)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - any failure must reach the user
            if self.token.cancelled:
                self.cancelled.emit()
            else:
                self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            if self.token.cancelled:
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)


class EventBridge(QObject):
    """A thread-safe callback whose calls arrive on the GUI thread as ``event`` signals."""

    event = Signal(object)

    def __call__(self, item: Any) -> None:
        self.event.emit(item)


def finish_workers(wait_ms: int = 10_000) -> list[str]:
    """At exit: cancel the running helper threads and wait for them, so none is destroyed
    while it runs; returns the names of any still running after ``wait_ms`` (then kept)."""
    for thread in list(_RUNNING):
        if isinstance(thread, FunctionWorker):
            thread.cancel()   # a live worker kept here was already told to stop
    stuck = []
    for thread in list(_RUNNING):
        if not thread.wait(wait_ms):
            stuck.append(type(thread).__name__)
    return stuck


def start_worker(owner: QObject, fn: Callable[[CancelToken, Callable[[Any], None]], Any],
                 on_done: Callable[[Any], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 on_progress: Callable[[Any], None] | None = None,
                 on_cancel: Callable[[], None] | None = None) -> FunctionWorker:
    """Create, wire and start a FunctionWorker; it deletes itself when finished. It is not
    a child of ``owner``, so closing the owner while it runs cannot destroy a running thread;
    its callbacks are connected with ``owner`` as context, so they stop when it is gone."""
    worker = FunctionWorker(fn)
    owner_alive = threading.Event()
    owner_alive.set()

    def owner_gone(*_: Any) -> None:
        owner_alive.clear()
        worker.cancel()

    owner.destroyed.connect(owner_gone)
    for signal, slot in ((worker.succeeded, on_done), (worker.failed, on_error),
                         (worker.progress, on_progress), (worker.cancelled, on_cancel)):
        if slot is not None:
            signal.connect(_while_set(owner_alive, slot))
    keep_until_finished(worker)
    worker.start()
    return worker


def _while_set(flag: threading.Event, slot: Callable[..., Any]) -> Callable[..., None]:
    """``slot``, called only while ``flag`` is set (its owner still exists)."""
    def call(*args: Any) -> None:
        if flag.is_set():
            slot(*args)
    return call


class JobWatcher(QObject):
    """Follows a job the app's runner runs, on the GUI thread (a timer reads its frozen
    status: no callback from the job's thread touches Qt). Emits ``progress(phase)`` when
    the phase changes, then one of ``succeeded(result)``, ``failed(message)``,
    ``cancelled()``; a cancel at any step ends in ``cancelled``, never ``failed``."""

    succeeded = Signal(object)
    failed = Signal(str)
    progress = Signal(object)
    cancelled = Signal()

    def __init__(self, job: Any, parent: QObject | None = None, interval_ms: int = 100) -> None:
        super().__init__(parent)
        self.job = job
        self._phase = ""
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._poll)
        self._timer.start(interval_ms)

    def cancel(self) -> None:
        """Ask the job to stop at its next step."""
        self.job.cancel()

    def wait(self, ms: int) -> bool:
        """Block up to ``ms`` for the job to finish (shutdown only)."""
        import time

        end = time.monotonic() + ms / 1000
        while self.job.job_status().state != RunState.FINISHED and time.monotonic() < end:
            time.sleep(0.05)
        return self.job.job_status().state == RunState.FINISHED

    def _poll(self) -> None:
        st = self.job.job_status()
        if st.phase and st.phase != self._phase:
            self._phase = st.phase
            self.progress.emit(st.phase)
        if st.state != RunState.FINISHED:
            return
        self._timer.stop()
        if st.reason == FinishReason.COMPLETED:
            self.succeeded.emit(getattr(self.job, "result", None))
        elif st.reason == FinishReason.CANCELLED:
            self.cancelled.emit()
        else:
            self.failed.emit(st.message)
        self.deleteLater()
