"""Live enhancement thread: always works on the newest submitted frame (latest-frame-wins).

The GUI submits jobs without waiting; a job that has not started when a newer one arrives
is dropped, so latency never grows. A job covers only the part of the frame the screen
shows (``rect``) and produces images at no more resolution than the screen shows
(``display_scale``). Large jobs run in bands and are abandoned between bands as soon as
a waiting job targets something else (another mode, stage position or view), so a mode
switch or a pan never waits for stale work. Display images (resize, levels to 8 bit,
the heat map's colour LUT) are made here, so the GUI thread only swaps textures.
Results return through a queued Qt signal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QThread, Signal

#: regions above this many LR pixels are enhanced in bands (cancellation points)
BAND_ABOVE_PX = 300 * 300
#: LR pixels per band: small enough to abandon quickly, large against the context rows
BAND_PX = 160 * 1024


@dataclass(frozen=True)
class EnhanceJob:
    """One region of a frame to enhance, with where and how it came from."""

    image: np.ndarray
    frame_number: int
    origin: tuple[int, int] = (0, 0)  # (row, col) of ``image`` (or of ``rect``) in the frame
    consistency: bool = False
    mode: str = ""
    t_received: float = field(default_factory=time.perf_counter)
    #: the camera's significant bits (Frame.bit_depth); None: the model's recorded depth
    bit_depth: int | None = None
    #: (row0, col0, height, width) of the region of ``image`` to enhance; None: all of it
    rect: tuple[int, int, int, int] | None = None
    #: output pixels per camera pixel wanted by the screen; None: the model's scale
    display_scale: float | None = None
    #: (x, y, z, objective) of the stage when the frame was taken: results for another
    #: position are stale
    position: tuple[Any, ...] | None = None
    #: display levels (lo, hi): the worker makes an 8-bit display image; None: raw output
    levels: tuple[float, float] | None = None
    #: colour LUT (N, 3|4) uint8 for the consistency heat map and its (lo, hi) in σ
    heat_lut: np.ndarray | None = None
    heat_range: tuple[float, float] = (1.5, 6.0)
    #: (height, width) of the visible region this job stands for (heads-up line)
    visible: tuple[int, int] | None = None

    def region(self) -> tuple[int, int, int, int]:
        if self.rect is not None:
            return self.rect
        return (self.origin[0], self.origin[1], self.image.shape[0], self.image.shape[1])


@dataclass(frozen=True)
class EnhanceResult:
    """The enhanced region (a display image when levels were given), its optional
    consistency map and timing."""

    enhanced: np.ndarray
    frame_number: int
    origin: tuple[int, int]
    scale: float  #: pixels of ``enhanced`` (and ``heat``) per camera pixel
    t_received: float
    mode: str = ""
    heat: np.ndarray | None = None          #: display (RGBA) heat map, or the σ map
    heat_sigma: np.ndarray | None = None    #: the consistency map in noise σ, LR grid
    rect: tuple[int, int, int, int] | None = None
    position: tuple[Any, ...] | None = None
    visible: tuple[int, int] | None = None
    compute_ms: float = 0.0


class Abandoned(Exception):
    """A newer job targets something else: this one is no longer worth finishing."""


def _limit_torch_threads(n: int) -> None:
    """Small live crops run fastest single-threaded when the GUI and camera share the CPU."""
    try:
        import torch

        torch.set_num_threads(max(1, int(n)))
    except Exception:  # noqa: BLE001, S110 - torch missing: the enhancer will say so
        pass


def same_target(a: EnhanceJob, b: EnhanceJob) -> bool:
    """Whether job ``b`` wants (mostly) what ``a`` is computing: same mode and stage
    position, and ``b``'s region at least half covered by ``a``'s."""
    if a.mode != b.mode or a.position != b.position or a.consistency != b.consistency:
        return False
    ar0, ac0, ah, aw = a.region()
    br0, bc0, bh, bw = b.region()
    ih = min(ar0 + ah, br0 + bh) - max(ar0, br0)
    iw = min(ac0 + aw, bc0 + bw) - max(ac0, bc0)
    return ih > 0 and iw > 0 and ih * iw >= 0.5 * bh * bw


def resize_area(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Shrink an (H, W[, C]) image by area averaging, keeping its dtype (display only)."""
    import torch
    import torch.nn.functional as F

    if img.shape[0] == out_h and img.shape[1] == out_w:
        return img
    a = img if img.ndim == 3 else img[..., None]
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    y = F.adaptive_avg_pool2d(t, (out_h, out_w))[0].permute(1, 2, 0)
    if np.issubdtype(img.dtype, np.integer):
        y = y.round_()
    out = y.numpy().astype(img.dtype)
    return out if img.ndim == 3 else out[..., 0]


def to_display(img: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """Apply display levels and make 8-bit pixels (what the camera view would do per paint)."""
    lo, hi = float(levels[0]), float(levels[1])
    if img.dtype == np.uint8 and lo == 0.0 and hi == 255.0:
        return img
    if img.dtype in (np.uint8, np.uint16):
        v = np.arange(256 if img.dtype == np.uint8 else 65536, dtype=np.float32)
        lut = np.clip((v - lo) * (255.0 / max(hi - lo, 1e-9)), 0, 255).astype(np.uint8)
        return lut[img]
    f = (img.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-9))
    return np.clip(f, 0, 255).astype(np.uint8)


def heat_display(sigma: np.ndarray, lut: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """σ map -> colour image through a fixed-range LUT (N, 3|4) uint8."""
    n = lut.shape[0]
    idx = np.clip((sigma - lo) * ((n - 1) / max(hi - lo, 1e-9)), 0, n - 1).astype(np.intp)
    return lut[idx]


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
        self.dropped = 0      #: jobs replaced before they started
        self.abandoned = 0    #: jobs stopped part-way because the target changed
        self.done = 0
        #: the job being computed now (None when idle)
        self.current: EnhanceJob | None = None
        #: intra-op threads for live inference; one avoids fighting the GUI and the camera
        self.torch_threads = 1
        #: measured LR pixels per second (moving average) for plain and consistency jobs
        self.throughput: dict[bool, float] = {}

    def set_enhancer(self, enhancer: Any) -> None:
        """Swap the model (or None to idle); takes effect from the next job."""
        with self._cond:
            self._enhancer = enhancer
            self._job = None
            self.throughput.clear()

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

    def _should_abandon(self, job: EnhanceJob, enhancer: Any) -> bool:
        with self._cond:
            waiting = self._job
            if self._stop or enhancer is not self._enhancer:
                return True
        return waiting is not None and not same_target(job, waiting)

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
            t0 = time.perf_counter()
            self.current = job
            try:
                res = self.process(job, enhancer)
            except Abandoned:
                self.abandoned += 1
                continue
            except Exception as exc:  # noqa: BLE001 - report and keep the thread alive
                self.failed.emit(f"{type(exc).__name__}: {exc}")
                continue
            finally:
                self.current = None
            dt = time.perf_counter() - t0
            r = job.region()
            rate = r[2] * r[3] / max(dt, 1e-6)
            old = self.throughput.get(job.consistency)
            self.throughput[job.consistency] = rate if old is None else 0.7 * old + 0.3 * rate
            with self._cond:
                if enhancer is not self._enhancer:
                    continue  # the model was swapped meanwhile: this result is stale
            self.done += 1
            self.result.emit(res)

    # ------------------------------------------------------------------ the work
    def _enhance(self, img: np.ndarray, job: EnhanceJob, enhancer: Any) -> np.ndarray:
        """Enhance ``img``; in bands (checked for abandonment) when it is large."""
        kw = {} if job.bit_depth is None else {"bit_depth": int(job.bit_depth)}
        h, w = img.shape[:2]
        if h * w <= BAND_ABOVE_PX or not hasattr(enhancer, "overlap"):
            return enhancer.enhance(img, **kw)
        from thinkscope_gui.jobs import Cancelled
        from thinkscope_gui.learn.tiled import enhance_bands

        try:
            blocks = list(enhance_bands(enhancer, img, bit_depth=job.bit_depth,
                                        band=max(32, BAND_PX // max(w, 1)),
                                        cancel=lambda: self._should_abandon(job, enhancer)))
        except Cancelled as exc:
            raise Abandoned() from exc
        return np.concatenate(blocks, axis=0)

    def process(self, job: EnhanceJob, enhancer: Any) -> EnhanceResult:
        """Enhance the job's region and make its display images (runs on this thread)."""
        t0 = time.perf_counter()
        r0, c0, h, w = job.region()
        frame = job.image
        # ``image`` is the whole frame when ``rect`` is given, else the region itself
        off = (r0, c0) if job.rect is None else (0, 0)
        lr0, lc0 = r0 - off[0], c0 - off[1]            # the region in ``image``
        s = float(enhancer.scale)
        kw = {} if job.bit_depth is None else {"bit_depth": int(job.bit_depth)}
        heat = heat_sigma = None
        if job.consistency:
            # context around the region so the re-imaging blur sees real neighbours
            m, q = 8, int(getattr(enhancer, "_q", 1))
            fh, fw = frame.shape[:2]
            a0, b0 = max(0, lr0 - m) // q * q, max(0, lc0 - m) // q * q
            a1, b1 = min(fh, lr0 + h + m), min(fw, lc0 + w + m)
            crop = np.ascontiguousarray(frame[a0:a1, b0:b1])
            out = self._enhance(crop, job, enhancer)
            if self._should_abandon(job, enhancer):
                raise Abandoned()
            sig = enhancer.consistency_sigma(crop, out, **kw)
            heat_sigma = np.ascontiguousarray(sig[lr0 - a0:lr0 - a0 + h, lc0 - b0:lc0 - b0 + w])
            d = 1.0 if job.display_scale is None else min(1.0, float(job.display_scale))
            shown = heat_sigma
            if d < 1.0:
                shown = resize_area(heat_sigma, max(1, round(h * d)), max(1, round(w * d)))
            heat = (heat_display(shown, job.heat_lut, *job.heat_range)
                    if job.heat_lut is not None else shown)
            enhanced = out  # not shown in this mode; kept for export and tests
            scale = shown.shape[1] / max(w, 1)
        else:
            crop = frame[lr0:lr0 + h, lc0:lc0 + w]
            out = self._enhance(np.ascontiguousarray(crop), job, enhancer)
            d = s if job.display_scale is None else min(s, float(job.display_scale))
            if d < s:
                out = resize_area(out, max(1, round(h * d)), max(1, round(w * d)))
            enhanced = to_display(out, job.levels) if job.levels is not None else out
            scale = enhanced.shape[1] / max(w, 1)
        return EnhanceResult(enhanced, job.frame_number, (r0, c0), float(scale),
                             job.t_received, job.mode, heat, heat_sigma, job.region(),
                             job.position, job.visible,
                             (time.perf_counter() - t0) * 1000.0)
