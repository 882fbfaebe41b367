"""Feeds the display from the camera and the enhancement worker from the newest frame.

A QTimer polls ``scope.latest_frame()`` (never blocking) and skips repeated frame
numbers. Each new frame goes to the display at once; when enhancement is on, the frame is
handed to the worker with the region the screen shows and the resolution it can show
(CameraView.enhance_target), within a pixel budget that follows the worker's measured
speed so enhancement keeps up. When the visible region is larger than the budget, it is
cut into tiles (a mosaic) and successive jobs fill it in from the newest frames while the
stage, view and mode stay put; any change starts a new, empty mosaic. The worker drops
and abandons stale work; results from a mode no longer shown or from another stage
position are never shown as current.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from .camera_view import CONSISTENCY_FLOOR, CONSISTENCY_TOP, CameraView, OverlayMode
from .enhance_worker import EnhanceJob, EnhanceResult, LiveEnhanceWorker, mosaic_tiles
from .rate import MeanMeter, RateMeter

#: target seconds per enhancement job: zoomed in (at least one screen pixel per camera
#: pixel) the view should update at video rate; zoomed out a larger share of the frame at
#: a few per second serves better than a small one at video rate
JOB_S_ZOOMED = 0.05
JOB_S_FIT = 0.12
#: the smallest region the budget ever shrinks to (LR pixels) and the first guess
MIN_BUDGET_PX = 128 * 128
FIRST_BUDGET_PX = 256 * 256
#: a consistency job costs about this many plain jobs of its size (the enhancement plus
#: re-imaging and the noise maps; measured 4-6x): the first guess for a consistency
#: preview once plain jobs have been timed
CONSISTENCY_COST = 5.0
#: a mosaic is cut again when the job budget has moved this factor either way from the
#: one it was cut for, once it has shown RECUT_AFTER tiles (measured costs, not a guess)
RECUT_DRIFT = 1.6
RECUT_AFTER = 3


def position_key(frame: Any) -> tuple[Any, ...] | None:
    """Where a frame was taken, rounded to a nanometre: (x, y, z, objective), with
    "moving" added for a frame exposed while the stage, focus or turret moved (its
    picture is of no one place: it matches no result, so overlays hide over it)."""
    try:
        x, y = frame.xy
        key = (round(float(x), 3), round(float(y), 3), round(float(frame.z), 3),
               str(frame.objective))
    except (AttributeError, TypeError, ValueError):
        return None
    return (*key, "moving") if getattr(frame, "moving", False) else key


class LiveController(QObject):
    """Display path + inference path; exposes fps/latency for the heads-up line."""

    frameShown = Signal(int)
    enhancedShown = Signal(int)
    failed = Signal(str)

    def __init__(self, scope: Any, view: CameraView, parent: QObject | None = None,
                 poll_ms: int = 5) -> None:
        super().__init__(parent)
        self.scope = scope
        self.view = view
        self.camera_rate = RateMeter()
        self.enhanced_rate = RateMeter()
        self.latency = MeanMeter()
        self.frames_shown = 0
        self.frames_enhanced = 0
        self.enhancing = False
        #: seconds one job may take (zoomed in, zoomed out); None: no budget, always the
        #: whole visible region (tests that check geometry)
        self.job_seconds: tuple[float, float] | None = (JOB_S_ZOOMED, JOB_S_FIT)
        #: a fixed LR pixel budget per job instead of the measured one (tests, benches)
        self.max_job_px: float | None = None
        self.stale_results = 0   #: results dropped: another mode or stage position by now
        #: latencies (ms) of the results shown, newest last (bench and heads-up)
        self.latencies: deque[float] = deque(maxlen=2000)
        #: (enhanced (h, w), visible (h, w)) of the last job submitted
        self.last_target: tuple[tuple[int, int], tuple[int, int]] | None = None
        #: fill the visible region tile by tile when one job cannot cover it
        self.progressive = True
        #: the mosaic being filled: (its key, generation, tiles); its start time, and the
        #: ms from its start until the visible region was fully enhanced (None: not yet)
        self._mosaic: tuple[tuple[Any, ...], int, tuple[tuple[int, int, int, int], ...]] | None
        self._mosaic = None
        self._mosaic_budget = 1.0   #: the job budget (LR px) the mosaic was cut for
        self._mosaic_results = 0    #: its results shown so far
        self._mosaic_t0 = 0.0
        self._generations = 0
        self.fill_ms: float | None = None
        #: (fraction of the visible region enhanced, tiles) of the last result shown
        self.coverage: tuple[float, int] = (0.0, 1)
        self._last_number: int | None = None
        #: frames shown per second at most: the screen's refresh rate (a frame arriving
        #: sooner after the last one shown could never reach the screen; the next poll
        #: shows the newest instead); None: every frame
        self.display_hz: float | None = _refresh_rate(view)
        self._shown_at = 0.0
        self._last_mode: OverlayMode | None = None
        #: a quick centre preview is wanted until the mode's first result is shown
        self._preview = True
        #: (image, number, bit_depth, position) of the last frame fed to the enhancer: a
        #: mode switch re-targets the worker at once instead of at the next camera frame
        self._last_input: tuple[np.ndarray, int, int | None, tuple[Any, ...] | None] | None
        self._last_input = None
        #: (frame number, the frame before it of the same still field) or None
        self._prev_image: tuple[int, np.ndarray] | None = None
        self.worker = LiveEnhanceWorker(self)
        self.worker.result.connect(self._on_result)
        self.worker.failed.connect(self.failed)
        self.worker.start()
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    # ---------------------------------------------------------------- display
    def poll(self) -> None:
        """Show the newest frame if it is new; hand it to the enhancer if enabled."""
        try:
            frame = self.scope.latest_frame()
        except Exception as exc:  # noqa: BLE001 - keep polling; report once per failure
            self.failed.emit(f"camera: {exc}")
            return
        fresh = frame is not None and frame.number != self._last_number
        if fresh and self.display_hz:
            fresh = time.perf_counter() - self._shown_at >= 0.9 / self.display_hz
        if frame is None or not fresh:
            if (self.enhancing and self.view.mode not in (self._last_mode, OverlayMode.OFF)
                    and self._last_input is not None and self.worker.enhancer is not None):
                self._submit(*self._last_input)   # a mode switch: the stale job is dropped
            return
        self._last_number = frame.number
        self._shown_at = time.perf_counter()
        self.show_image(frame.image, frame.pixel_size_um, frame.number,
                        bit_depth=frame.bit_depth, position=position_key(frame),
                        moving=bool(getattr(frame, "moving", False)))

    def show_image(self, image: np.ndarray, pixel_size_um: float, number: int = -1,
                   bit_depth: int | None = None, position: tuple[Any, ...] | None = None,
                   moving: bool = False) -> None:
        """Display an image (live frame or snap) and feed the enhancer. ``bit_depth``:
        the camera's significant bits; ``position``: where the stage was (stale check);
        ``moving``: exposed during a move (Frame.moving): shown, never enhanced."""
        self.view.set_frame(image, pixel_size_um, position)
        self.camera_rate.tick()
        self.frames_shown += 1
        self.frameShown.emit(number)
        last = self._last_input
        # the frame before, of the same still field: the consistency map's noise comes
        # from the two (consistency.noise_variance_from_pair)
        same = (last is not None and position is not None and last[3] == position
                and number >= 0 and last[1] >= 0 and last[1] != number
                and last[0].shape == image.shape and last[0].dtype == image.dtype)
        self._prev_image = (number, last[0]) if same and last is not None else None
        if moving:
            self._last_input = None
            return
        self._last_input = (image, number, bit_depth, position)
        if self.enhancing and self.worker.enhancer is not None:
            self._submit(image, number, bit_depth, position)

    def budget_px(self, consistency: bool, zoomed: bool, tiled: bool = False) -> float:
        """LR pixels one job may cover so it takes about JOB_S_* at the measured cost
        (``tiled``: a mosaic tile, enhanced with context around it)."""
        if self.max_job_px is not None:
            return float(self.max_job_px)
        if self.job_seconds is None:
            return float("inf")
        enhancer = self.worker.enhancer
        margin = (self.worker.tile_margin(enhancer, consistency)
                  if tiled and enhancer is not None else 0)
        seconds = self.job_seconds[0 if zoomed else 1]
        px = self.worker.budget_px(consistency, seconds, margin)
        if px is None and consistency:   # none timed yet: scale from the plain jobs
            px = self.worker.budget_px(False, seconds / CONSISTENCY_COST, margin)
        if px is None:
            return FIRST_BUDGET_PX
        return max(MIN_BUDGET_PX, px)

    def _submit(self, image: np.ndarray, number: int, bit_depth: int | None = None,
                position: tuple[Any, ...] | None = None) -> None:
        view = self.view
        mode = view.mode
        if mode == OverlayMode.OFF:
            return
        enhancer = self.worker.enhancer
        scale = float(enhancer.scale)
        consistency = mode == OverlayMode.CONSISTENCY
        # the first jobs of a new mode are a quick preview (the short budget, about the
        # centre) so something shows at once (a newer frame's preview replaces one that
        # has not started); once one is shown, the mosaic fills in with larger tiles
        if mode != self._last_mode:
            self._preview = True
        first = self._preview
        zoomed = view.zoom_factor() >= 0.999
        self._last_mode = mode
        q = int(getattr(enhancer, "_q", 1))
        mosaic = self.progressive and mode != OverlayMode.LENS and not first
        budget = self.budget_px(consistency, zoomed or first, tiled=mosaic)
        target = view.enhance_target(scale, q, math.inf if mosaic else budget)
        if target is None:
            return  # nothing enhanced is on screen
        rect, display_scale, visible = target
        gen: int | None = None
        tiles: tuple[tuple[int, int, int, int], ...]
        if first:
            tiles = (rect,)
            self._mosaic = None
            self.coverage = (0.0, 1)
        else:
            tiles, gen = self._tiles(rect, display_scale, position, mode, budget, q)
        self.last_target = (tiles[0][2:], visible)
        if len(tiles) == 1:
            rect = tiles[0]
        job = EnhanceJob(image, number, rect[:2], mode=mode.value, consistency=consistency,
                         bit_depth=bit_depth, rect=rect, display_scale=display_scale,
                         position=position, levels=view._levels,
                         heat_lut=view.heat_lut if consistency else None,
                         heat_range=(CONSISTENCY_FLOOR, CONSISTENCY_TOP), visible=visible,
                         tiles=tiles if len(tiles) > 1 else None, mosaic=gen,
                         prev_image=(self._prev_image[1] if consistency and self._prev_image
                                     and self._prev_image[0] == number else None))
        self.worker.submit(job)

    def _tiles(self, rect: tuple[int, int, int, int], display_scale: float,
               position: tuple[Any, ...] | None, mode: OverlayMode, budget: float, q: int
               ) -> tuple[tuple[tuple[int, int, int, int], ...], int]:
        """The mosaic for this view: kept while mode, stage position, visible region and
        display scale stay put (so the tiles fill in), else cut anew for the budget now."""
        key = (mode, position, rect, round(display_scale, 4))
        recut = self._mosaic is not None and self._mosaic[0] == key
        if recut:
            # kept unless the tiles were cut for a cost the worker no longer measures (the
            # first cut of a mode rests on one preview job; the machine's load changes):
            # tiles far over their time budget hold the frame rate and latency down. The
            # worker carries the canvas over to the new cut (same view), so nothing blinks
            assert self._mosaic is not None
            drift = budget / max(self._mosaic_budget, 1.0)
            if (self._mosaic_results < RECUT_AFTER
                    or 1.0 / RECUT_DRIFT <= drift <= RECUT_DRIFT
                    or (len(self._mosaic[2]) == 1 and drift > 1.0)):   # it covers all already
                return self._mosaic[2], self._mosaic[1]
        if self.progressive and mode != OverlayMode.LENS:
            tiles = mosaic_tiles(rect, budget, q)
        else:
            tiles = (rect,)
        self._generations += 1   # never reused: a preview clears _mosaic, not the count
        gen = self._generations
        self._mosaic = (key, gen, tiles)
        self._mosaic_budget = float(budget)
        self._mosaic_results = 0
        if not recut:   # a re-cut goes on filling the same view: its fill time runs on
            self._mosaic_t0 = time.perf_counter()
            self.fill_ms = None
            self.coverage = (0.0, len(tiles))
        return tiles, gen

    def _on_result(self, res: EnhanceResult) -> None:
        view = self.view
        if not self.enhancing or res.mode != view.mode.value:
            self.stale_results += 1
            return  # stale: produced for a mode that is no longer shown
        if res.position is not None and res.position != view.frame_position:
            self.stale_results += 1
            return  # the stage has moved on: never show an old place as current
        if res.mosaic is None:
            self._preview = False   # the mode's preview is up: fill in the mosaic next
        if res.heat is not None:
            view.set_consistency(res.heat, res.origin, res.scale, res.heat_sigma,
                                 res.position)
        else:
            view.set_enhanced(res.enhanced, res.origin, res.scale, res.position)
        now = time.perf_counter()
        ms = (now - res.t_received) * 1000.0
        current = self._mosaic is not None and res.mosaic == self._mosaic[1]
        if current:
            self._mosaic_results += 1
            self.coverage = (res.coverage, res.n_tiles)
            if self.fill_ms is None and res.coverage >= 0.999:
                self.fill_ms = (now - self._mosaic_t0) * 1000.0
        self.enhanced_rate.tick()
        self.latency.add(ms)
        self.latencies.append(ms)
        self.frames_enhanced += 1
        self.enhancedShown.emit(res.frame_number)

    # ------------------------------------------------------------ enhancement
    def set_enhancer(self, enhancer: Any) -> None:
        self.worker.set_enhancer(enhancer)
        self.reset_meters()

    def set_enhancing(self, on: bool) -> None:
        self.enhancing = bool(on)
        self._preview = True
        self.enhanced_rate.reset()
        self.latency.reset()
        if not on:
            self.view.overlay_item.clear()
            self.view.heat_item.clear()
            self.last_target = None

    def reset_meters(self) -> None:
        self.enhanced_rate.reset()
        self.latency.reset()

    def stats(self) -> dict[str, float]:
        """Camera fps, enhanced fps and mean latency (ms) over the last seconds."""
        return {"camera_fps": self.camera_rate.rate(),
                "enhanced_fps": self.enhanced_rate.rate() if self.enhancing else 0.0,
                "latency_ms": self.latency.mean if self.enhancing else 0.0,
                "dropped": float(self.worker.dropped)}

    def heads_up(self) -> str:
        """Camera fps, enhanced fps, latency and the size being enhanced ("enhancing
        512² of 1024²" when the budget keeps enhancement to part of what is visible)."""
        s = self.stats()
        text = f"camera {s['camera_fps']:.1f} fps"
        if self.enhancing:
            text += (f" | enhanced {s['enhanced_fps']:.1f} fps"
                     f" | latency {s['latency_ms']:.0f} ms")
            if self.last_target is not None:
                done, shown = self.last_target
                frac, n = self.coverage
                if n > 1 and frac >= 0.999:
                    text += f" | enhancing {_size(shown)} of {_size(shown)} in {n} tiles"
                elif n > 1:
                    text += f" | enhancing {frac:.0%} of {_size(shown)} ({n} tiles, filling)"
                else:
                    text += f" | enhancing {_size(done)}"
                    if done[0] * done[1] < 0.95 * shown[0] * shown[1]:
                        text += f" of {_size(shown)}"
            if self.view.enhanced_stale:
                text += " | stale: stage moved"
        return text

    def shutdown(self) -> None:
        """Stop polling and the worker thread (window close)."""
        self.timer.stop()
        self.worker.stop()


def _refresh_rate(widget: Any) -> float | None:
    """The refresh rate (Hz) of the screen the widget is on, within 30-240; None if unknown."""
    try:
        screen = widget.screen()
        hz = float(screen.refreshRate()) if screen is not None else 0.0
    except (AttributeError, RuntimeError):
        return None
    return min(240.0, max(30.0, hz)) if hz > 0 else None


def _size(hw: tuple[int, int]) -> str:
    h, w = hw
    return f"{h}²" if h == w else f"{w}×{h}"
