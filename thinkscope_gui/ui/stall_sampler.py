"""Says WHAT blocked the GUI thread: a sampling thread that records every thread's stack.

A stall of the event loop has two kinds of cause: work on the GUI thread itself (its stack
shows it) and waiting for the GIL while another thread runs C code that does not release
it (an extension module's import, an h5py call, a torch op). The sampler wakes every few
milliseconds; it needs the GIL to run, so a late wake-up is itself a measurement: the
stack of each thread right after such a gap shows who held the GIL.

``explain(t0, t1)`` turns the samples within a stall into one line per thread (its most
frequent frames in our code), and the longest GIL gap with the stacks seen right after it.
Stdlib only (no Qt): used by the watchdog test and by start-up diagnostics.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Any

#: frames from these path fragments are "ours" (preferred when summarising a stack)
OUR_CODE = ("thinkscope_gui", "hardware", "main.py", "/tests/")


def _frame_labels(frame: object, depth: int = 40) -> list[str]:
    """Innermost first: 'file:line func' for up to ``depth`` frames."""
    out = []
    for fs in traceback.extract_stack(frame, limit=depth)[::-1]:  # type: ignore[arg-type]
        name = fs.filename.rsplit("site-packages/", 1)[-1]
        out.append(f"{name}:{fs.lineno} {fs.name}")
    return out


def summarise(labels: list[str], n: int = 3) -> str:
    """The innermost frame plus the innermost ``n`` frames of our code (the caller)."""
    if not labels:
        return "?"
    ours = [lab for lab in labels if any(k in lab for k in OUR_CODE)][:n]
    head = labels[0]
    return " <- ".join([head, *[o for o in ours if o != head]])


class StackSampler:
    """Samples all threads' stacks every ``interval_s`` into a ring buffer."""

    def __init__(self, interval_s: float = 0.005, keep_s: float = 120.0) -> None:
        self.interval_s = interval_s
        self._samples: collections.deque[tuple[float, float, dict[str, str]]] = (
            collections.deque(maxlen=int(keep_s / interval_s)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StackSampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def _run(self) -> None:
        me = threading.get_ident()
        last = time.perf_counter()
        while not self._stop.wait(self.interval_s):
            now = time.perf_counter()
            gap = now - last - self.interval_s  # lateness: the GIL (or the CPU) was busy
            last = now
            names = {t.ident: t.name for t in threading.enumerate()}
            stacks = {}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stacks[names.get(ident, str(ident))] = summarise(_frame_labels(frame))
            self._samples.append((now, gap, stacks))

    def samples(self, t0: float, t1: float) -> list[tuple[float, float, dict[str, str]]]:
        return [s for s in list(self._samples) if t0 <= s[0] <= t1]

    def explain(self, t0: float, t1: float, top: int = 2) -> str:
        """What every thread did between ``t0`` and ``t1`` (perf_counter seconds)."""
        window = self.samples(t0, t1 + 0.05)  # the sample after a GIL gap lands just after
        if not window:
            return "no samples"
        per_thread: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        for _t, _gap, stacks in window:
            for name, stack in stacks.items():
                per_thread[name][stack] += 1
        worst = max(window, key=lambda s: s[1])
        lines = [f"{len(window)} samples; longest sampler gap {worst[1] * 1000:.0f} ms, "
                 f"then: " + "; ".join(f"[{n}] {s}" for n, s in worst[2].items()
                                        if "MainThread" in n or _busy(s))]
        for name, counts in per_thread.items():
            common = ", ".join(f"{c}x {s}" for s, c in counts.most_common(top))
            lines.append(f"  [{name}] {common}")
        return "\n".join(lines)


def _busy(stack: str) -> bool:
    """False for threads that merely wait (sleep, wait, select)."""
    idle = ("wait", "sleep", "select", "_recv", "get ", "accept")
    head = stack.split(" <- ", 1)[0]
    return not any(w in head for w in idle)


def format_stalls(sampler: StackSampler, stalls: Iterable[tuple[Any, ...]],
                  over_s: float = 0.05) -> str:
    """One block per stall over ``over_s``: (label, seconds, t_start, t_end[, GUI-thread
    CPU seconds, ...]), as the watchdog's spans are."""
    out = []
    for label, s, t0, t1, *rest in stalls:
        if s > over_s:
            work = f"; GUI-thread work {rest[0] * 1000:.0f} ms" if rest else ""
            out.append(f"stall {s * 1000:.0f} ms ({label}{work}):\n{sampler.explain(t0, t1)}")
    return "\n".join(out)
