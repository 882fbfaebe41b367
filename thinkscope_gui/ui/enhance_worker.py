"""Live enhancement thread: always works on the newest submitted frame (latest-frame-wins).

The GUI submits jobs without waiting; a job that has not started when a newer one arrives
is dropped, so latency never grows. Results return through a queued Qt signal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QThread, Signal


@dataclass(frozen=True)
class EnhanceJob:
    """One crop (or whole frame) to enhance, with where it came from."""

    image: np.ndarray
    frame_number: int
    origin: tuple[int, int] = (0, 0)  # (row, col) of the crop in the camera frame
    consistency: bool = False
    mode: str = ""
    t_received: float = field(default_factory=time.perf_counter)
    #: the camera's significant bits (Frame.bit_depth); None: the model's recorded depth
    bit_depth: int | None = None


@dataclass(frozen=True)
class EnhanceResult:
    """The enhanced crop, its optional consistency map and timing."""

    enhanced: np.ndarray
    frame_number: int
    origin: tuple[int, int]
    scale: float
    t_received: float
    mode: str = ""
    heat: np.ndarray | None = None


def _limit_torch_threads(n: int) -> None:
    """Small live crops run fastest single-threaded when the GUI and camera share the CPU."""
    try:
        import torch

        torch.set_num_threads(max(1, int(n)))
    except Exception:  # noqa: BLE001, S110 - torch missing: the enhancer will say so
        pass


class LiveEnhanceWorker(QThread):
    """Enhances the newest job with the current enhancer; stale jobs are dropped."""

    result = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._job: EnhanceJob | None = None
        self._enhancer: Any = None
        self._stop = False
        self.dropped = 0
        self.done = 0
        #: intra-op threads for live inference; one avoids fighting the GUI and the camera
        self.torch_threads = 1

    def set_enhancer(self, enhancer: Any) -> None:
        """Swap the model (or None to idle); takes effect from the next job."""
        with self._cond:
            self._enhancer = enhancer
            self._job = None

    @property
    def enhancer(self) -> Any:
        return self._enhancer

    def submit(self, job: EnhanceJob) -> None:
        """Never blocks: replaces any job that is still waiting."""
        with self._cond:
            if self._job is not None:
                self.dropped += 1
            self._job = job
            self._cond.notify()

    def busy(self) -> bool:
        with self._cond:
            return self._job is not None

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait(5000)

    def run(self) -> None:  # noqa: D401 - Qt override
        limited = False  # torch is set up at the first job, not while the window starts
        while True:
            with self._cond:
                while self._job is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                job, self._job = self._job, None
                enhancer = self._enhancer
            if enhancer is None or job is None:
                continue
            if not limited:
                _limit_torch_threads(self.torch_threads)
                limited = True
            try:
                # the frame's own bit depth (12 in a uint16, say) sets the full scale
                kw = {} if job.bit_depth is None else {"bit_depth": int(job.bit_depth)}
                out = enhancer.enhance(job.image, **kw)
                heat = None
                if job.consistency:
                    heat = enhancer.consistency(job.image, out, **kw)
            except Exception as exc:  # noqa: BLE001 - report and keep the thread alive
                self.failed.emit(f"{type(exc).__name__}: {exc}")
                continue
            with self._cond:
                if enhancer is not self._enhancer:
                    continue  # the model was swapped meanwhile: this result is stale
            self.done += 1
            self.result.emit(EnhanceResult(out, job.frame_number, job.origin,
                                           float(enhancer.scale), job.t_received, job.mode,
                                           heat))
