"""The one GUI-stall meter: how long the event loop goes without running a short timer,
and how each long gap splits.

A 10 ms timer that fires 250 ms late means the GUI thread was busy (or blocked) for about
240 ms: the window could not repaint or take clicks in that time. Every bench (``bench
live``, ``bench session``) and the watchdog test read the same meter; the stack sampler
(stall_sampler.py) says what each thread did inside the gaps it records.

A gap splits into the GUI thread's own CPU time (work done on the GUI thread), its wait
for a CPU (Linux schedstat: an overloaded machine) and the rest, where it slept (mostly
waiting for the GIL held by another thread).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from qtpy.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

__all__ = ["Span", "StallWatchdog", "cpu_waiting_s"]


class Span(NamedTuple):
    """One gap over the report threshold."""

    label: str      #: what the caller said was going on (``StallWatchdog.label``)
    stall_s: float  #: how late the timer fired
    t0: float       #: perf_counter when the gap began
    t1: float       #: and when it ended
    busy_s: float   #: the GUI thread's own CPU time in it
    runq_s: float   #: its wait for a CPU in it (nan where the kernel does not say)


def sched_reader() -> Callable[[], tuple[float, float]] | None:
    """A function giving the calling thread's (seconds on a CPU, seconds waiting in the
    run queue for one) from Linux schedstat; None where the kernel does not say."""
    try:
        fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
    except OSError:
        return None

    def read() -> tuple[float, float]:
        run, wait = os.pread(fd, 128, 0).split()[:2]
        return int(run) / 1e9, int(wait) / 1e9

    try:
        read()
    except (OSError, ValueError):
        return None
    return read


def cpu_waiting_s() -> float | None:
    """Seconds some task has waited for a CPU since boot (/proc/pressure/cpu)."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as f:
            some = f.readline().split()
        return float(dict(kv.split("=") for kv in some[1:])["total"]) / 1e6
    except (OSError, ValueError, KeyError):
        return None


class StallWatchdog(QObject):
    """Ticks a ``interval_ms`` timer on the GUI thread (create and start it there).

    ``worst_s``: the longest stall; ``worst_split``: (GUI-thread work, wait for a CPU) in
    that stall; ``worst_busy_s``: the most GUI-thread CPU time in any one gap (the part of
    a stall the GUI thread's own work causes, whatever the machine's load); ``stalls``
    and ``spans``: every stall over ``report_over_s``; ``cpu_pressure()``: the share of
    the watched time some task of the machine waited for a CPU."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 10,
                 report_over_s: float = 0.05) -> None:
        super().__init__(parent)
        self.interval_s = interval_ms / 1000.0
        self.report_over_s = report_over_s
        self.label = ""
        self.stalls: list[tuple[str, float]] = []   #: (label at the time, seconds)
        self.spans: list[Span] = []
        self._sched: Callable[[], tuple[float, float]] | None = None
        self._pressure: list[tuple[float, float | None]] = []
        self._last: float | None = None
        self.reset()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> StallWatchdog:
        self._sched = sched_reader()   # the GUI thread's own schedstat
        self._pressure = [(time.perf_counter(), cpu_waiting_s())]
        self.reset()
        self._mark()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()
        self._last = None
        self._pressure.append((time.perf_counter(), cpu_waiting_s()))

    def reset(self) -> None:
        """Start the worst-stall figures afresh (a new bench cell); stalls and spans stay."""
        self.worst_s = 0.0
        self.worst_busy_s = 0.0
        self.worst_split = (0.0, 0.0)
        if self._last is not None:   # running: the next gap starts now
            self._mark()

    def _mark(self) -> None:
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self._last_wait = self._sched()[1] if self._sched else math.nan

    def cpu_pressure(self) -> float | None:
        """Share of the watched time (start to stop) in which some task of the machine
        was waiting for a CPU (Linux PSI "some"); None where the kernel does not say."""
        if len(self._pressure) != 2:
            return None
        (t0, w0), (t1, w1) = self._pressure
        if w0 is None or w1 is None:
            return None
        return min(1.0, (w1 - w0) / max(t1 - t0, 1e-9))

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        waited = self._sched()[1] if self._sched else math.nan
        if self._last is not None:
            stall, busy = now - self._last - self.interval_s, cpu - self._last_cpu
            runq = waited - self._last_wait
            self.worst_busy_s = max(self.worst_busy_s, busy)
            if stall > self.worst_s:
                self.worst_s, self.worst_split = stall, (busy, runq)
            if stall > self.report_over_s:
                self.stalls.append((self.label, stall))
                self.spans.append(Span(self.label, stall, self._last, now, busy, runq))
                log.info("GUI stall %.0f ms (%s)", stall * 1000, self.label)
        self._last, self._last_cpu, self._last_wait = now, cpu, waited
