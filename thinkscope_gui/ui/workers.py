"""Background workers: run a callable off the GUI thread, and bridge engine callbacks to Qt."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QThread, Signal


class CancelToken:
    """Cooperative cancellation shared between the GUI and a worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class Cancelled(Exception):
    """Raised inside a worker function when the user cancelled."""


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
