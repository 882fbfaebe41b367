"""SIGINT and SIGTERM as one clean cancel for the long headless commands.

Job schedulers send SIGTERM, people press Ctrl-C: both must end a run the same way, with
the work finished or dropped, files closed, a summary and the conventional exit code
(128 + signal number: 130 for SIGINT, 143 for SIGTERM). A Python-level
``KeyboardInterrupt`` can land anywhere (inside ``thread.join()`` it even marks the thread
stopped on 3.11), so instead the handlers only record the signal and call ``on_cancel``;
the command's own loop notices and winds down.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class SignalCancel:
    """Context manager: while active, SIGINT/SIGTERM call ``on_cancel`` once and are recorded.

    Outside the main thread (where Python cannot install handlers) it does nothing, so
    the same command code runs inside the GUI's worker threads.
    """

    def __init__(self, on_cancel: Callable[[], Any] | None = None) -> None:
        self._on_cancel = on_cancel
        self._previous: dict[int, Any] = {}
        self.signum: int | None = None
        self.event = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once a signal has arrived."""
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal number, the shell's convention (130 SIGINT, 143 SIGTERM)."""
        return 128 + int(self.signum) if self.signum is not None else 0

    @property
    def name(self) -> str:
        """``SIGINT``/``SIGTERM`` or an empty string."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        self.event.set()
        if first and self._on_cancel is not None:
            self._on_cancel()

    def __enter__(self) -> SignalCancel:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def run_job(job: Any, sig: SignalCancel, poll_s: float = 0.2) -> Any:
    """Run ``job`` through the one job runner (thinkscope_gui.jobs) and wait for it.

    The job runs in the runner's thread; this (main) thread keeps receiving signals and
    turns one into the runner's cancel, so a headless command ends the same way the GUI's
    Stop does: the job's own status says completed, cancelled or failed.
    """
    from thinkscope_gui.jobs import JobRunner

    runner = JobRunner()
    runner.start(job)
    while runner.busy:
        if sig.cancelled:
            runner.cancel()
        runner.wait(poll_s)
    return runner.status()
