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
           "start_worker"]


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


def start_worker(owner: QObject, fn: Callable[[CancelToken, Callable[[Any], None]], Any],
                 on_done: Callable[[Any], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 on_progress: Callable[[Any], None] | None = None,
                 on_cancel: Callable[[], None] | None = None) -> FunctionWorker:
    """Create, wire and start a FunctionWorker; it deletes itself when finished."""
    worker = FunctionWorker(fn, owner)
    if on_done:
        worker.succeeded.connect(on_done)
    if on_error:
        worker.failed.connect(on_error)
    if on_progress:
        worker.progress.connect(on_progress)
    if on_cancel:
        worker.cancelled.connect(on_cancel)
    worker.finished.connect(worker.deleteLater)
    worker.start()
    return worker


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
