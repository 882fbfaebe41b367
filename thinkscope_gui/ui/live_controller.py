"""Feeds the display from the camera and the enhancement worker from the newest frame.

A QTimer polls ``scope.latest_frame()`` (never blocking) and skips repeated frame
numbers. Each new frame goes to the display at once; when enhancement is on, the frame
(or only the lens crop) is handed to the worker, which drops stale work.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from .camera_view import CameraView, OverlayMode
from .enhance_worker import EnhanceJob, EnhanceResult, LiveEnhanceWorker
from .rate import MeanMeter, RateMeter


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
        self._last_number: int | None = None
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
        if frame is None or frame.number == self._last_number:
            return
        self._last_number = frame.number
        self.show_image(frame.image, frame.pixel_size_um, frame.number)

    def show_image(self, image: np.ndarray, pixel_size_um: float, number: int = -1) -> None:
        """Display an image (live frame or snap) and feed the enhancer."""
        self.view.set_frame(image, pixel_size_um)
        self.camera_rate.tick()
        self.frames_shown += 1
        self.frameShown.emit(number)
        if self.enhancing and self.worker.enhancer is not None:
            self._submit(image, number)

    def _submit(self, image: np.ndarray, number: int) -> None:
        mode = self.view.mode
        if mode == OverlayMode.OFF:
            return
        if mode == OverlayMode.LENS:
            r0, c0, h, w = self.view.lens_source_rect()
            crop = np.ascontiguousarray(image[r0:r0 + h, c0:c0 + w])
            job = EnhanceJob(crop, number, (r0, c0), mode=mode.value)
        else:
            job = EnhanceJob(image, number, (0, 0), mode=mode.value,
                             consistency=mode == OverlayMode.CONSISTENCY)
        self.worker.submit(job)

    def _on_result(self, res: EnhanceResult) -> None:
        if not self.enhancing or res.mode != self.view.mode.value:
            return  # stale: produced for a mode that is no longer shown
        if res.heat is not None:
            self.view.set_consistency(res.heat)
        else:
            self.view.set_enhanced(res.enhanced, res.origin, res.scale)
        self.enhanced_rate.tick()
        self.latency.add((time.perf_counter() - res.t_received) * 1000.0)
        self.frames_enhanced += 1
        self.enhancedShown.emit(res.frame_number)

    # ------------------------------------------------------------ enhancement
    def set_enhancer(self, enhancer: Any) -> None:
        self.worker.set_enhancer(enhancer)
        self.reset_meters()

    def set_enhancing(self, on: bool) -> None:
        self.enhancing = bool(on)
        self.enhanced_rate.reset()
        self.latency.reset()
        if not on:
            self.view.overlay_item.clear()
            self.view.heat_item.clear()

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
        s = self.stats()
        text = f"camera {s['camera_fps']:.1f} fps"
        if self.enhancing:
            text += (f" | enhanced {s['enhanced_fps']:.1f} fps"
                     f" | latency {s['latency_ms']:.0f} ms")
        return text

    def shutdown(self) -> None:
        """Stop polling and the worker thread (window close)."""
        self.timer.stop()
        self.worker.stop()
