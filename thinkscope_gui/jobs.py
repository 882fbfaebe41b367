"""One headless job runner: every long-running task runs through it (no Qt).

Why: acquisition, training, calibration, autofocus, batch enhance and model rebuilds used
to have four life-cycle patterns and four cancel exceptions, so a Stop during autofocus
ended "failed". Modelled on pymmcore-plus' ``MDARunner``: an explicit :class:`RunState`,
a separate :class:`FinishReason`, a frozen :class:`JobStatus` snapshot and a small
:class:`Job` protocol for the per-job work. :class:`Cancelled` is THE cancellation
exception; whatever step it comes from, the run ends ``FinishReason.CANCELLED``.

A job that drives the stand (``needs_stand``) holds the stand's :class:`StandLease` while
it runs: a second one is refused with :class:`StandBusy` and a message naming the holder.
Training and enhancing need none. This module imports nothing from ``pairs``/``learn``
(they import it), so every layer can use it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from psygnal import Signal

__all__ = ["Cancelled", "FinishReason", "FunctionJob", "Job", "JobControl", "JobRunner",
           "JobStatus", "RunState", "StandBusy", "StandLease", "lease_for"]

_log = logging.getLogger(__name__)


class RunState(str, Enum):
    """Life cycle of a run; how it ended is :class:`FinishReason`, not a state."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    FINISHED = "finished"


class FinishReason(str, Enum):
    """Why a finished run ended."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Cancelled(Exception):  # noqa: N818 - the one name every layer raises and catches
    """The operator stopped the job; work already stored is kept."""


class StandBusy(RuntimeError):
    """Another job holds the stand; the message names it."""


@dataclass(frozen=True)
class JobStatus:
    """Immutable snapshot of a job, safe to hand to another thread."""

    name: str = ""
    state: RunState = RunState.IDLE
    reason: FinishReason | None = None
    phase: str = ""
    done: int = 0
    total: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    can_pause: bool = False
    needs_stand: bool = False

    @property
    def fraction(self) -> float:
        """Share of the work done, 0..1 (0 while the total is unknown)."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def active(self) -> bool:
        """Started and not finished."""
        return self.state in (RunState.RUNNING, RunState.PAUSED, RunState.CANCELLING)


class JobControl:
    """State, pause, cancel and progress of one run: the part every job shares.

    The job's thread calls :meth:`checkpoint` between steps (it blocks while paused and
    raises :class:`Cancelled` after :meth:`cancel`); any thread may pause, resume, cancel
    and read :meth:`snapshot`.
    """

    def __init__(self, name: str, *, can_pause: bool = False, needs_stand: bool = False) -> None:
        self.name = name
        self.can_pause = can_pause
        self.needs_stand = needs_stand
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._state = RunState.IDLE
        self._reason: FinishReason | None = None
        self._cancel = False
        self._paused = False
        self._phase = ""
        self._message = ""
        self._done = self._total = self._counted = 0
        self._t0 = 0.0
        self._t_end = 0.0

    # --- any thread -------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        """Current run state."""
        return self._state

    @property
    def reason(self) -> FinishReason | None:
        """How the run ended (None until it has)."""
        return self._reason

    @property
    def cancel_requested(self) -> bool:
        """True once cancel() was called; for callbacks such as autofocus' ``cancel=``."""
        return self._cancel

    def cancel(self) -> None:
        """Ask the run to stop at its next checkpoint (also before it started)."""
        with self._lock:
            if self._state == RunState.FINISHED:
                return
            self._cancel = True
            self._paused = False
            if self._state in (RunState.RUNNING, RunState.PAUSED):
                self._state = RunState.CANCELLING
            self._wake.notify_all()

    def pause(self) -> bool:
        """Hold at the next checkpoint; False when the job cannot pause or is not running."""
        with self._lock:
            if not self.can_pause or self._state != RunState.RUNNING:
                return False
            self._paused = True
            self._state = RunState.PAUSED
            return True

    def resume(self) -> None:
        """Continue after pause()."""
        with self._lock:
            if self._state == RunState.PAUSED:
                self._paused = False
                self._state = RunState.RUNNING
                self._wake.notify_all()

    def snapshot(self) -> JobStatus:
        """A frozen copy of the run's state, progress and ETA."""
        with self._lock:
            end = self._t_end or time.perf_counter()
            elapsed = end - self._t0 if self._t0 else 0.0
            eta: float | None = None
            if self._state == RunState.FINISHED:
                eta = 0.0
            elif self._counted and self._total:
                eta = max(0, self._total - self._done) * elapsed / self._counted
            return JobStatus(self.name, self._state, self._reason, self._phase, self._done,
                             self._total, elapsed, eta, self._message, self.can_pause,
                             self.needs_stand)

    # --- the job's thread -------------------------------------------------------------
    def begin(self, total: int = 0) -> None:
        """Mark the run started (RUNNING, or CANCELLING when a cancel came first)."""
        with self._lock:
            self._state = RunState.CANCELLING if self._cancel else RunState.RUNNING
            self._reason = None
            self._t0 = time.perf_counter()
            self._t_end = 0.0
            self._total = total

    def checkpoint(self) -> None:
        """Between steps: wait while paused; raise :class:`Cancelled` after cancel()."""
        with self._lock:
            while self._paused and not self._cancel:
                self._wake.wait(0.2)
            if self._cancel:
                raise Cancelled(f"{self.name} cancelled")

    def progress(self, done: int | None = None, total: int | None = None, *,
                 phase: str | None = None, message: str | None = None,
                 counted: int | None = None) -> None:
        """Record progress; ``counted`` = steps done in this run (the ETA's rate), by
        default ``done`` (a resumed run passes fewer: old steps took no time now)."""
        with self._lock:
            if done is not None:
                self._done = done
                self._counted = done if counted is None else counted
            if total is not None:
                self._total = total
            if phase is not None:
                self._phase = phase
            if message is not None:
                self._message = message

    def advance(self, n: int = 1) -> None:
        """n more steps done in this run."""
        with self._lock:
            self._done += n
            self._counted += n

    def finish(self, reason: FinishReason, message: str = "") -> None:
        """Mark the run finished with ``reason``."""
        with self._lock:
            self._state = RunState.FINISHED
            self._reason = reason
            self._t_end = time.perf_counter()
            if message:
                self._message = message
            self._wake.notify_all()

    def run_body(self, body: Callable[[], Any]) -> Any:
        """Run ``body`` and finish by how it ended: :class:`Cancelled` -> CANCELLED (also
        any error raised after cancel(), e.g. a device interrupted mid-move), another
        exception -> FAILED with its message. Returns body's result (None unless
        completed); never raises an Exception."""
        if self._state != RunState.FINISHED and not self._t0:
            self.begin(self._total)
        try:
            result = body()
        except Cancelled:
            self.finish(FinishReason.CANCELLED, "cancelled")
            return None
        except Exception as exc:  # noqa: BLE001 - reported in the status
            if self._cancel:
                self.finish(FinishReason.CANCELLED, "cancelled")
            else:
                _log.exception("%s failed", self.name)
                self.finish(FinishReason.FAILED, f"{type(exc).__name__}: {exc}")
            return None
        self.finish(FinishReason.COMPLETED, self._message or "done")
        return result


@runtime_checkable
class Job(Protocol):
    """What the runner needs from a job. ``run`` blocks and reports its end in
    ``job_status()`` (it must not raise for cancellation)."""

    name: str
    needs_stand: bool
    scope: Any

    def run(self) -> Any: ...

    def cancel(self) -> None: ...

    def job_status(self) -> JobStatus: ...


class FunctionJob:
    """A job from a function ``fn(control)``: for batch enhance, model rebuilds, autofocus
    and calibration. ``fn`` calls ``control.checkpoint()`` between steps and
    ``control.progress(...)``; its return value becomes :attr:`result`."""

    def __init__(self, name: str, fn: Callable[[JobControl], Any], *, scope: Any = None,
                 needs_stand: bool = False, can_pause: bool = False) -> None:
        self.name = name
        self.scope = scope
        self.needs_stand = needs_stand
        self.control = JobControl(name, can_pause=can_pause, needs_stand=needs_stand)
        self._fn = fn
        self.result: Any = None

    def run(self) -> JobStatus:
        """Run inline; returns the final status."""
        self.control.begin()
        self.result = self.control.run_body(lambda: self._fn(self.control))
        return self.control.snapshot()

    def cancel(self) -> None:
        """Stop at the next checkpoint."""
        self.control.cancel()

    def pause(self) -> bool:
        """Hold at the next checkpoint (when the job supports it)."""
        return self.control.pause()

    def resume(self) -> None:
        """Continue after pause()."""
        self.control.resume()

    def job_status(self) -> JobStatus:
        """A frozen snapshot."""
        return self.control.snapshot()


class StandLease:
    """Who drives the stand now. One holder at a time; manual control asks first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: str | None = None

    @property
    def holder(self) -> str | None:
        """Name of the job holding the lease, or None."""
        return self._holder

    @property
    def held(self) -> bool:
        """True while a job drives the stand."""
        return self._holder is not None

    def acquire(self, holder: str) -> None:
        """Take the lease for ``holder``; raises :class:`StandBusy` when another has it."""
        with self._lock:
            if self._holder is not None:
                raise StandBusy(f"the microscope is busy with {self._holder}: stop it or wait "
                                f"until it ends before starting {holder}")
            self._holder = holder

    def release(self, holder: str) -> None:
        """Give the lease back (only its holder can)."""
        with self._lock:
            if self._holder == holder:
                self._holder = None

    def check_free(self, action: str) -> None:
        """Raise :class:`StandBusy` when a job holds the stand (for manual control)."""
        holder = self._holder
        if holder is not None:
            raise StandBusy(f"cannot {action}: the microscope is busy with {holder}")


_LEASES: weakref.WeakKeyDictionary[Any, StandLease] = weakref.WeakKeyDictionary()
_LEASES_LOCK = threading.Lock()


def lease_for(scope: Any) -> StandLease:
    """The one lease of this microscope (created on first use). A wrapper that forwards
    to a microscope (e.g. one that also shows each snapped frame) names it as ``stand``."""
    scope = getattr(scope, "stand", None) or scope
    with _LEASES_LOCK:
        lease = _LEASES.get(scope)
        if lease is None:
            lease = _LEASES[scope] = StandLease()
        return lease


class _Workers:
    """Daemon threads that run jobs; one idle spare is kept ready.

    ``Thread.start()`` waits until the new thread runs, and on a busy machine that wait
    (for a CPU and for the GIL, held by the camera and enhancement threads) was the GUI
    thread's at every Start. Handing a job to an idle worker is a queue put; a worker that
    takes the last idle slot starts the next spare itself, so the wait is its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, Callable[[], None]]] = queue.SimpleQueue()
        self._idle = 0

    def ensure_spare(self) -> None:
        """Start an idle worker now unless one is waiting (call where a wait is harmless)."""
        with self._lock:
            if self._idle:
                return
            self._idle += 1
        self._spawn()

    def submit(self, name: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` in a worker named ``name`` (a new thread only when none is idle)."""
        with self._lock:
            spawn = not self._idle
            if not spawn:
                self._idle -= 1
        self._queue.put((name, fn))
        if spawn:
            self._spawn()

    def _spawn(self) -> None:
        threading.Thread(target=self._work, name="job-idle", daemon=True).start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            name, fn = self._queue.get()
            with self._lock:
                spare = not self._idle
                if spare:
                    self._idle += 1
            if spare:
                self._spawn()
            me.name = name
            try:
                fn()
            except BaseException:  # noqa: BLE001 - a worker outlives its jobs
                _log.exception("worker %s failed", name)
            me.name = "job-idle"
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()


class JobRunner:
    """Runs one job at a time per runner on a background thread.

    Signals (psygnal; emitted on the job's thread, a GUI re-posts them): ``started(status)``,
    ``finished(status)``. A job with ``needs_stand`` takes its scope's lease first; a
    refused job raises :class:`StandBusy` from :meth:`start` and never runs. Live view is
    paused while a lease is held and restored after (``live_hooks``).
    """

    started = Signal(object)
    finished = Signal(object)

    def __init__(self, live_hooks: tuple[Callable[[], bool], Callable[[bool], None]] | None
                 = None) -> None:
        """live_hooks: (pause_live() -> was_live, restore_live(was_live)); the runner, not
        each panel, stops live view for a stand job and restores it afterwards."""
        self._lock = threading.Lock()
        self._job: Any = None
        self._done = threading.Event()
        self._done.set()
        self._last: JobStatus = JobStatus()
        self.live_hooks = live_hooks
        _WORKERS.ensure_spare()  # so that start() never waits for a thread to begin

    @property
    def job(self) -> Any:
        """The job running now, or None."""
        return self._job

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return not self._done.is_set()

    def start(self, job: Any) -> None:
        """Start ``job`` in a worker thread; raises StandBusy when it cannot run now.

        Returns at once: no wait for the thread, nor for the camera, on the caller's
        (often the GUI) thread."""
        with self._lock:
            lease = lease_for(job.scope) if job.needs_stand else None
            if lease is not None:  # first: "the microscope is busy with ..." says most
                lease.check_free(f"start {job.name}")
            if self._job is not None:
                raise StandBusy(f"{self._job.name} is still running: stop it or wait until "
                                f"it ends before starting {job.name}")
            if lease is not None:
                lease.acquire(job.name)
            self._job = job
            self._done.clear()
        was_live = False
        if lease is not None and self.live_hooks is not None:
            try:
                was_live = self.live_hooks[0]()
            except Exception:  # noqa: BLE001 - live view must not block the job
                _log.exception("pausing live view failed")
        _WORKERS.submit(f"job-{job.name}", lambda: self._run(job, lease, was_live))

    def run(self, job: Any) -> JobStatus:
        """Run ``job`` and wait for it (headless commands and tests)."""
        self.start(job)
        return self.wait()

    def _run(self, job: Any, lease: StandLease | None, was_live: bool) -> None:
        try:
            self.started.emit(job.job_status())
            try:
                job.run()
            except Cancelled:
                pass
            except BaseException:  # noqa: BLE001 - a job must report, not raise
                _log.exception("job %s raised", job.name)
            status = job.job_status()
        finally:
            if lease is not None:
                lease.release(job.name)
            if lease is not None and self.live_hooks is not None:
                try:
                    self.live_hooks[1](was_live)
                except Exception:  # noqa: BLE001
                    _log.exception("restoring live view failed")
            with self._lock:
                self._job = None
        self._last = status
        self._done.set()
        self.finished.emit(status)

    def status(self) -> JobStatus:
        """The running job's snapshot, or the last finished one."""
        job = self._job
        return job.job_status() if job is not None else self._last

    def cancel(self) -> None:
        """Stop the running job at its next step (no-op when idle)."""
        job = self._job
        if job is not None:
            job.cancel()

    def pause(self) -> bool:
        """Pause the running job when it supports it."""
        job = self._job
        return bool(job is not None and hasattr(job, "pause") and job.pause())

    def resume(self) -> None:
        """Resume a paused job."""
        job = self._job
        if job is not None and hasattr(job, "resume"):
            job.resume()

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job ends; returns its final status."""
        self._done.wait(timeout)
        return self.status()
