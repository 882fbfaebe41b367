"""Live enhancement thread: always works on the newest submitted frame (latest-frame-wins).

The GUI submits jobs without waiting; a job that has not started when a newer one arrives
is dropped, so latency never grows. A job covers only the part of the frame the screen
shows (``rect``) and produces images at no more resolution than the screen shows
(``display_scale``). Large jobs run in bands and are abandoned between bands as soon as
a waiting job targets something else (another mode, stage position or view), so a mode
switch or a pan never waits for stale work. Display images (resize, levels to 8 bit,
the heat map's colour LUT) are made here, so the GUI thread only swaps textures.
Results return through a queued Qt signal.

When the visible region is larger than one job may cover, a job carries a *mosaic*: the
tiles of the visible region (centre first) and a generation number that changes with the
stage position, view and mode. Each job of a generation enhances the next tile from its
own (the newest) frame and pastes it into a display canvas kept here, so the view fills in
over a few results and then keeps refreshing tile by tile. A new generation starts from
an empty canvas: nothing from an old position or view survives into it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QThread, Signal

from thinkscope_gui.ui.workers import keep_until_finished

#: regions above this many LR pixels are enhanced in bands (cancellation points)
BAND_ABOVE_PX = 300 * 300
#: LR pixels per band: small enough to abandon quickly, large against the context rows
BAND_PX = 160 * 1024
#: recent jobs the cost model is fitted to, and the most it takes as fixed cost per job
COST_SAMPLES = 24
JOB_OVERHEAD_MAX_S = 0.03


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
    #: mosaic: the tiles (row0, col0, height, width) covering the visible region, centre
    #: first; the worker picks the next one. None: ``rect`` is the whole job
    tiles: tuple[tuple[int, int, int, int], ...] | None = None
    #: mosaic generation: jobs of one generation fill one canvas (same mode, stage
    #: position, view and display scale)
    mosaic: int | None = None
    #: consistency: the camera's frame before ``image``, of the same still field (same
    #: shape): the map's noise comes from the two; None: estimated from ``image`` alone
    prev_image: np.ndarray | None = None

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
    mosaic: int | None = None   #: the job's mosaic generation (None: a single job)
    n_tiles: int = 1            #: tiles in the mosaic
    coverage: float = 1.0       #: fraction of the visible region enhanced in the canvas
    computed_px: int = 0        #: LR pixels put through the model (region plus context)


class Abandoned(Exception):
    """A newer job targets something else: this one is no longer worth finishing."""


def _limit_torch_threads(n: int) -> None:
    """Small live crops run fastest single-threaded when the GUI and camera share the CPU."""
    try:
        import torch

        torch.set_num_threads(max(1, int(n)))
    except Exception:  # noqa: BLE001, S110 - torch missing: the enhancer will say so
        pass


def lower_thread_priority(nice: int) -> bool:
    """Make the calling thread ``nice`` steps nicer (Linux: threads have their own nice
    value): background compute then yields the CPU to the GUI thread the moment it wakes,
    instead of sharing it, so on a busy machine the view stays responsive. Only within
    this process's share of the CPU (the scheduler groups a session's processes), so it
    does not slow the work down against other programs. False where it cannot."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                  + int(nice)))
    except OSError:
        return False
    return True


def same_target(a: EnhanceJob, b: EnhanceJob) -> bool:
    """Whether job ``b`` wants (mostly) what ``a`` is computing: same mode and stage
    position, and ``b``'s region at least half covered by ``a``'s, or both tiles of one
    mosaic generation (the next tile follows this one)."""
    if a.mode != b.mode or a.position != b.position or a.consistency != b.consistency:
        return False
    if a.mosaic is not None and a.mosaic == b.mosaic:
        return True
    if a.tiles is None and b.tiles is not None:   # a quick preview of b's view: finish it
        ar0, ac0, ah, aw = a.region()
        return (min(t[0] for t in b.tiles) <= ar0 and min(t[1] for t in b.tiles) <= ac0
                and ar0 + ah <= max(t[0] + t[2] for t in b.tiles)
                and ac0 + aw <= max(t[1] + t[3] for t in b.tiles))
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


def mosaic_tiles(rect: tuple[int, int, int, int], max_px: float, align: int = 1,
                 step: int = 16) -> tuple[tuple[int, int, int, int], ...]:
    """Cut ``rect`` (row0, col0, height, width) into the fewest near-equal tiles of at most
    ``max_px`` pixels, edges on multiples of ``align`` and sizes in steps of ``step`` (so
    tile sizes stay put frame to frame), ordered by distance from the centre (the centre
    tile first: it is what the eye looks at)."""
    r0, c0, h, w = rect
    if h * w <= max_px:
        return (rect,)
    q = max(1, int(step), int(align))

    def up(v: float) -> int:
        return max(q, -(-math.ceil(v) // q) * q)

    best: tuple[tuple[int, int], int, int] | None = None
    for nr in range(1, -(-h // q) + 1):
        if best is not None and nr > best[0][0]:
            break  # more rows than the best has tiles: no better split is left
        th = up(h / nr)
        nc = max(1, math.ceil(w / max(q, (max_px / th) // q * q)))
        tw = up(w / nc)
        while th * tw > max_px and tw > q:
            nc += 1
            tw = up(w / nc)
        if th * tw > max_px and th > q:
            continue
        key = (nr * nc, abs(th - tw))
        if best is None or key < best[0]:
            best = (key, nr, nc)
    assert best is not None
    _, nr, nc = best
    th, tw = up(h / nr), up(w / nc)
    tiles = []
    for i in range(nr):
        for j in range(nc):
            a, b = r0 + i * th, c0 + j * tw
            if a < r0 + h and b < c0 + w:
                tiles.append((a, b, min(th, r0 + h - a), min(tw, c0 + w - b)))
    cy, cx = r0 + h / 2, c0 + w / 2
    tiles.sort(key=lambda t: ((t[0] + t[2] / 2 - cy) ** 2 + (t[1] + t[3] / 2 - cx) ** 2))
    return tuple(tiles)


class _Mosaic:
    """The canvas one mosaic generation fills: raw enhanced pixels (or the σ map) at
    display resolution, the RGBA display image made from them, and what is covered."""

    def __init__(self, job: EnhanceJob, scale: float) -> None:
        assert job.tiles is not None
        self.gen = job.mosaic
        self.tiles = job.tiles
        #: what the canvas shows: a job for another mode or place never paints into it
        self.key = (job.mosaic, job.tiles, job.mode, job.position, job.consistency)
        self.next = 0
        r0 = min(t[0] for t in self.tiles)
        c0 = min(t[1] for t in self.tiles)
        r1 = max(t[0] + t[2] for t in self.tiles)
        c1 = max(t[1] + t[3] for t in self.tiles)
        self.rect = (r0, c0, r1 - r0, c1 - c0)
        d = scale if job.display_scale is None else min(scale, float(job.display_scale))
        if job.consistency:
            d = min(1.0, d)  # the σ map lives on the camera grid at most
        self.d = d
        self.shape = (max(1, round((r1 - r0) * d)), max(1, round((c1 - c0) * d)))
        self.raw: np.ndarray | None = None      # enhanced pixels (or σ) at display size
        self.rgba = np.zeros((*self.shape, 4), np.uint8)
        self.covered = np.zeros(self.shape, bool)
        self.sigma: np.ndarray | None = None    # consistency: σ on the camera grid
        self.levels: tuple[float, float] | None = None
        self.done: set[int] = set()

    def canvas_box(self, tile: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of ``tile`` in the canvas: rounded edges, so tiles abut."""
        r0, c0 = self.rect[:2]
        d = self.d
        return (round((tile[0] - r0) * d), round((tile[0] + tile[2] - r0) * d),
                round((tile[1] - c0) * d), round((tile[1] + tile[3] - c0) * d))

    def coverage(self) -> float:
        return float(self.covered.mean())

    def inherit(self, old: _Mosaic) -> None:
        """Keep ``old``'s canvas when this is the same view cut into other tiles (the
        controller re-cuts a mosaic whose tiles miss their time budget): same mode, stage
        position, region and display size, so every painted pixel is still right here."""
        same = (old.key[2:] == self.key[2:] and old.rect == self.rect
                and old.shape == self.shape and old.d == self.d)
        if not same:
            return
        self.raw = old.raw
        self.rgba = old.rgba
        self.covered = old.covered
        self.sigma = old.sigma
        self.levels = old.levels


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
        #: how much nicer than the GUI thread this thread runs (lower_thread_priority).
        #: On the loaded 2-core machine (bench live --explain, load 6-10) +10 cut the GUI
        #: thread's waits for a CPU in stalls over 50 ms from 2-12 s to 0.3-4 s per run
        #: but starved enhancement (1-4 fps where +0 gave 8-24); +5 keeps most of both.
        #: Not more: a nicer thread holding the GIL when preempted stalls the GUI too
        self.nice = 5
        #: recent (LR pixels computed, seconds) of plain and consistency jobs: the cost
        #: model behind :meth:`budget_px`
        self._costs: dict[bool, deque[tuple[float, float]]] = {}
        self._cost_fit: dict[bool, tuple[Any, tuple[float, float]]] = {}
        self._mosaic: _Mosaic | None = None   # the canvas being filled (worker thread only)
        #: a new enhancer to warm up before its first job (on this thread, not the GUI's)
        self._warm: Any = None
        self.warmed = threading.Event()   #: set once the current enhancer is warmed up
        self.native_id: int | None = None   #: the OS thread id, once running

    def set_enhancer(self, enhancer: Any) -> None:
        """Swap the model (or None to idle); takes effect from the next job."""
        with self._cond:
            self._enhancer = enhancer
            self._job = None
            self._mosaic = None
            self._costs.clear()
            self.warmed.clear()
            self._warm = enhancer
            self._cond.notify()

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
        if not self.wait(5000):
            # a tile still computing on a loaded machine: never let the window destroy it
            keep_until_finished(self)

    def cost_model(self, consistency: bool) -> tuple[float, float] | None:
        """(seconds per job, seconds per LR pixel computed) fitted to the recent jobs, or
        None before the first. A job costs a fixed part (conversions, the display image,
        the result's trip to the GUI) plus a part per pixel; a plain rate (pixels per
        second) would make small jobs look slow and shrink the next ones further."""
        samples = list(self._costs.get(consistency, ()))
        if not samples:
            return None
        key = (len(samples), samples[-1])   # the GUI asks per frame; jobs end less often
        cached = self._cost_fit.get(consistency)
        if cached is not None and cached[0] == key:
            return cached[1]
        px = np.array([p for p, _ in samples])
        dt = np.array([t for _, t in samples])
        a = 0.0
        if len(samples) >= 4 and px.max() > 1.3 * px.min():
            slope, icpt = np.polyfit(px, dt, 1)
            if slope > 0:
                a = float(np.clip(icpt, 0.0, min(JOB_OVERHEAD_MAX_S, 0.5 * dt.min())))
        b = float(np.median((dt - a) / px))
        self._cost_fit[consistency] = (key, (a, max(b, 1e-9)))
        return a, max(b, 1e-9)

    def budget_px(self, consistency: bool, seconds: float, margin: int = 0) -> float | None:
        """The LR pixels of a region (before ``margin`` pixels of context on each side)
        one job may cover to take about ``seconds``; None before the first job."""
        model = self.cost_model(consistency)
        if model is None:
            return None
        a, b = model
        side = math.sqrt(max(seconds - a, 0.25 * seconds) / b) - 2 * margin
        return max(side, 0.0) ** 2

    def tile_margin(self, enhancer: Any, consistency: bool = False) -> int:
        """LR pixels of context a mosaic tile is enhanced with on each side."""
        q = int(getattr(enhancer, "_q", 1))
        margin = -(-int(getattr(enhancer, "radius", 8)) // q) * q
        return max(8, margin) if consistency else margin

    def _should_abandon(self, job: EnhanceJob, enhancer: Any) -> bool:
        with self._cond:
            waiting = self._job
            if self._stop or enhancer is not self._enhancer:
                return True
        return waiting is not None and not same_target(job, waiting)

    def run(self) -> None:  # noqa: D401 - Qt override
        self.native_id = threading.get_native_id()
        lower_thread_priority(self.nice)
        limited = False  # torch is set up at the first job, not while the window starts
        while True:
            with self._cond:
                while self._job is None and self._warm is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                warm, self._warm = self._warm, None
                job = None if warm is not None else self._job
                if job is not None:
                    self._job = None
                enhancer = self._enhancer
            if not limited and (warm is not None or job is not None):
                _limit_torch_threads(self.torch_threads)
                limited = True
            if warm is not None:
                self._warm_up(warm)
                continue
            if enhancer is None or job is None:
                continue
            t0 = time.perf_counter()
            self.current = job
            try:
                res = (self.process_tile(job, enhancer) if job.tiles
                       else dataclasses.replace(self.process(job, enhancer), mosaic=job.mosaic))
            except Abandoned:
                self.abandoned += 1
                continue
            except Exception as exc:  # noqa: BLE001 - report and keep the thread alive
                self.failed.emit(f"{type(exc).__name__}: {exc}")
                continue
            finally:
                self.current = None
            dt = time.perf_counter() - t0
            if res.computed_px > 0:
                self._costs.setdefault(job.consistency, deque(maxlen=COST_SAMPLES)).append(
                    (float(res.computed_px), dt))
            with self._cond:
                if enhancer is not self._enhancer:
                    continue  # the model was swapped meanwhile: this result is stale
            self.done += 1
            self.result.emit(res)

    def _warm_up(self, enhancer: Any) -> None:
        """Run each live path once on a small frame as soon as a model arrives: the first
        inference pays one-off costs (thread pools, kernel selection, lazy imports that
        hold the GIL) that would otherwise stall the view when enhancement is switched
        on. Here they overlap the time the user takes to switch it on."""
        meta = getattr(enhancer, "meta", None)
        try:
            if meta is None:   # no network behind it (None, or a stand-in): nothing to warm
                return
            c = int(getattr(meta, "channels", 3) or 3)
            rng = np.random.default_rng(0)
            frame = rng.integers(0, 255, (96, 96, c), dtype=np.uint8)
            q = int(getattr(enhancer, "_q", 1))
            rect = (16 // q * q, 16 // q * q, 64, 64)
            for consistency in (False, True):
                for scale in (None, 1.0):
                    self.process(EnhanceJob(frame, -1, rect[:2], consistency=consistency,
                                            rect=rect, display_scale=scale,
                                            levels=(0.0, 255.0)), enhancer, context=8)
        except Exception:  # noqa: BLE001, S110 - a failing model reports on its first job
            pass
        finally:
            with self._cond:
                if enhancer is self._enhancer:
                    self.warmed.set()

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

    def process_tile(self, job: EnhanceJob, enhancer: Any) -> EnhanceResult:
        """The next tile of the job's mosaic from the job's (newest) frame, pasted into the
        generation's canvas; the result carries the whole canvas (a copy: the GUI keeps it)."""
        assert job.tiles is not None
        s = float(enhancer.scale)
        mo = self._mosaic
        if mo is None or mo.key != (job.mosaic, job.tiles, job.mode, job.position,
                                    job.consistency):
            new = _Mosaic(job, s)
            if mo is not None:
                new.inherit(mo)
            mo = self._mosaic = new
        i = mo.next % len(mo.tiles)
        tile = mo.tiles[i]
        y0, y1, x0, x1 = mo.canvas_box(tile)
        # real neighbours as far as the network sees (its receptive radius): no seams
        margin = self.tile_margin(enhancer)
        res = self.process(dataclasses.replace(job, rect=tile, tiles=None),
                           enhancer, context=margin, size=(y1 - y0, x1 - x0), display=False)
        if job.consistency:
            assert res.heat_sigma is not None and res.heat is not None
            if mo.sigma is None:
                mo.sigma = np.full(mo.rect[2:], np.nan, np.float32)
            r0, c0 = mo.rect[:2]
            mo.sigma[tile[0] - r0:tile[0] - r0 + tile[2],
                     tile[1] - c0:tile[1] - c0 + tile[3]] = res.heat_sigma
            heat = (heat_display(res.heat, job.heat_lut, *job.heat_range)
                    if job.heat_lut is not None else None)
            if heat is not None:
                if heat.shape[-1] == 3:
                    heat = np.concatenate([heat, np.full((*heat.shape[:2], 1), 255,
                                                         np.uint8)], axis=-1)
                mo.rgba[y0:y1, x0:x1] = heat
        else:
            out = res.enhanced
            if mo.raw is None:
                mo.raw = np.zeros((*mo.shape, *out.shape[2:]), out.dtype)
            mo.raw[y0:y1, x0:x1] = out
        mo.covered[y0:y1, x0:x1] = True
        mo.done.add(i)
        mo.next = i + 1
        if not job.consistency:
            assert mo.raw is not None
            if job.levels != mo.levels:   # levels changed: redo the whole display image
                mo.levels = job.levels
                self._paint(mo, mo.raw, mo.covered, slice(None), slice(None), job.levels)
            else:
                self._paint(mo, mo.raw[y0:y1, x0:x1], mo.covered[y0:y1, x0:x1],
                            slice(y0, y1), slice(x0, x1), job.levels)
        image = mo.rgba.copy()
        sigma = mo.sigma.copy() if mo.sigma is not None else None
        scale = mo.shape[1] / max(mo.rect[3], 1)
        return EnhanceResult(image, job.frame_number, mo.rect[:2], float(scale),
                             job.t_received, job.mode, image if job.consistency else None,
                             sigma, tile, job.position, job.visible, res.compute_ms,
                             mosaic=job.mosaic, n_tiles=len(mo.tiles),
                             coverage=mo.coverage(), computed_px=res.computed_px)

    @staticmethod
    def _paint(mo: _Mosaic, raw: np.ndarray, covered: np.ndarray, ys: slice, xs: slice,
               levels: tuple[float, float] | None) -> None:
        """Raw pixels -> the RGBA display canvas (alpha 0 where nothing is enhanced yet,
        so the camera frame shows through)."""
        if levels is None:
            levels = (0.0, float(np.iinfo(raw.dtype).max)
                      if np.issubdtype(raw.dtype, np.integer) else 1.0)
        disp = to_display(raw, levels)
        rgba = mo.rgba[ys, xs]
        rgba[..., :3] = disp[..., None] if disp.ndim == 2 else disp[..., :3]
        rgba[..., 3] = np.where(covered, 255, 0)

    def process(self, job: EnhanceJob, enhancer: Any, context: int = 0,
                size: tuple[int, int] | None = None, display: bool = True) -> EnhanceResult:
        """Enhance the job's region and make its display images (runs on this thread).
        ``context``: camera pixels of real neighbours enhanced around the region and cut
        off again (tiles then meet without seams); ``size``: the output (rows, cols)
        wanted instead of the display scale's; ``display``: False keeps raw pixels."""
        t0 = time.perf_counter()
        r0, c0, h, w = job.region()
        frame = job.image
        # ``image`` is the whole frame when ``rect`` is given, else the region itself
        off = (r0, c0) if job.rect is None else (0, 0)
        lr0, lc0 = r0 - off[0], c0 - off[1]            # the region in ``image``
        s = float(enhancer.scale)
        q = int(getattr(enhancer, "_q", 1))
        kw = {} if job.bit_depth is None else {"bit_depth": int(job.bit_depth)}
        heat = heat_sigma = None
        fh, fw = frame.shape[:2]
        if job.consistency:
            # context around the region so the re-imaging blur sees real neighbours
            m = max(8, context)
            a0, b0 = max(0, lr0 - m) // q * q, max(0, lc0 - m) // q * q
            a1, b1 = min(fh, lr0 + h + m), min(fw, lc0 + w + m)
            crop = np.ascontiguousarray(frame[a0:a1, b0:b1])
            computed = crop.shape[0] * crop.shape[1]
            out = self._enhance(crop, job, enhancer)
            if self._should_abandon(job, enhancer):
                raise Abandoned()
            prev = None if job.prev_image is None else job.prev_image[a0:a1, b0:b1]
            sig = enhancer.consistency_sigma(crop, out, prev_frame=prev, **kw)
            heat_sigma = np.ascontiguousarray(sig[lr0 - a0:lr0 - a0 + h, lc0 - b0:lc0 - b0 + w])
            d = 1.0 if job.display_scale is None else min(1.0, float(job.display_scale))
            shown = heat_sigma
            want = size or (max(1, round(h * d)), max(1, round(w * d)))
            if want != shown.shape[:2]:
                shown = resize_area(heat_sigma, *want)
            heat = (heat_display(shown, job.heat_lut, *job.heat_range)
                    if job.heat_lut is not None and display else shown)
            enhanced = out  # not shown in this mode; kept for export and tests
            scale = shown.shape[1] / max(w, 1)
        else:
            m = context // q * q
            a0, b0 = max(0, lr0 - m) // q * q, max(0, lc0 - m) // q * q
            a1, b1 = min(fh, lr0 + h + m), min(fw, lc0 + w + m)
            computed = (a1 - a0) * (b1 - b0)
            out = self._enhance(np.ascontiguousarray(frame[a0:a1, b0:b1]), job, enhancer)
            if (a0, b0, a1, b1) != (lr0, lc0, lr0 + h, lc0 + w):
                y, x = round((lr0 - a0) * s), round((lc0 - b0) * s)
                out = out[y:y + round(h * s), x:x + round(w * s)]
            d = s if job.display_scale is None else min(s, float(job.display_scale))
            want = size or (max(1, round(h * d)), max(1, round(w * d)))
            if want != out.shape[:2]:
                out = resize_area(out, *want)
            enhanced = (to_display(out, job.levels) if job.levels is not None and display
                        else out)
            scale = enhanced.shape[1] / max(w, 1)
        return EnhanceResult(enhanced, job.frame_number, (r0, c0), float(scale),
                             job.t_received, job.mode, heat, heat_sigma, job.region(),
                             job.position, job.visible,
                             (time.perf_counter() - t0) * 1000.0, computed_px=computed)
