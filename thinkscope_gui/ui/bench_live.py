"""`main.py bench live`: the real window, offscreen, on the simulated camera, with live
enhancement in every overlay mode at fit, 1:1 and 4x zoom.

Per cell it measures what a user sees: camera frames shown per second, enhanced results
shown per second, latency from frame arrival to the enhanced result on screen (median and
p95), and the worst GUI-thread stall (the longest gap between ticks of a 2 ms timer on
the GUI thread). Per mode it also measures how long a switch into the mode takes to show
its first result, and per cell how long the visible region takes to fill in completely
(the tiles of the progressive mosaic; one job where the budget covers it all). The window
is widened until the camera view is about ``view_px`` wide (the issue's ~900 px view),
whatever room the panels beside it take. Figures go in benches, never in timed unit tests.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

import numpy as np

MODES = {"lens": "enhancement lens", "side": "side by side", "wipe": "split wipe",
         "blend": "blend", "consistency": "consistency map"}
ZOOMS = ("fit", "1:1", "4x")


def _pump(app: Any, seconds: float, until: Any = None) -> bool:
    """Run the GUI event loop for ``seconds`` (or until ``until()``)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.001)
    return False


def _simulator_settled() -> bool:
    """The simulated camera's one-off background work is over (the texture mip levels it
    computes in its "sim-texture-warm" thread a few seconds after its first frame, two
    FFT workers long). A real camera has none, so the cells do not measure it."""
    return not any(t.name == "sim-texture-warm" for t in threading.enumerate())


class StallMeter:
    """The longest gap between ticks of a fast timer on the GUI thread."""

    def __init__(self, interval_ms: int = 2) -> None:
        from qtpy.QtCore import QTimer

        self.interval = interval_ms / 1000.0
        self.worst = 0.0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self._last)
        self._last = now

    def reset(self) -> None:
        self.worst = 0.0
        self._last = time.perf_counter()


def _set_zoom(view: Any, zoom: str, mode: str) -> None:
    """Fit, one camera pixel per screen pixel, or 4 screen pixels per camera pixel, centred
    on the frame (on the enhanced panel side by side)."""
    from qtpy.QtCore import QRectF

    view.fit()
    if zoom == "fit":
        return
    h, w = view.frame.shape[:2]
    cx = 1.5 * w if mode == "side" else w / 2
    f = 1.0 if zoom == "1:1" else 4.0
    ratio = view.devicePixelRatioF() or 1.0
    vw, vh = view.view.width() * ratio / f, view.view.height() * ratio / f
    view._user_range = True
    view.view.setRange(QRectF(cx - vw / 2, h / 2 - vh / 2, vw, vh), padding=0.0)


def _cell(app: Any, win: Any, stall: StallMeter, seconds: float) -> dict[str, Any]:
    live = win.live
    _pump(app, 0.6)  # settle: the budget follows the new target
    t_fill = time.perf_counter()
    n_cam, n_enh = live.frames_shown, live.frames_enhanced
    live.latencies.clear()
    stall.reset()
    t0 = time.perf_counter()
    _pump(app, seconds)
    dt = time.perf_counter() - t0
    lat = np.array(live.latencies, float) if live.latencies else np.array([np.nan])
    done, shown = live.last_target if live.last_target else ((0, 0), (0, 0))
    frac, n_tiles = live.coverage
    if live.fill_ms is None:   # not filled within the cell: a lower bound
        fill = f">{(time.perf_counter() - t_fill) * 1000.0 + 600:.0f}"
    else:
        fill = f"{live.fill_ms:.0f}"
    enhancing = (f"{frac:.0%} of {shown[1]}x{shown[0]} in {n_tiles} tiles" if n_tiles > 1
                 else f"{done[1]}x{done[0]} of {shown[1]}x{shown[0]}")
    return {"camera_fps": round((live.frames_shown - n_cam) / dt, 1),
            "enhanced_fps": round((live.frames_enhanced - n_enh) / dt, 1),
            "latency_median_ms": round(float(np.median(lat)), 1),
            "latency_p95_ms": round(float(np.percentile(lat, 95)), 1),
            "stall_ms": round(stall.worst * 1000.0, 1),
            "enhancing": enhancing, "fill_ms": fill, "tiles": n_tiles,
            "stale_dropped": live.stale_results, "abandoned": live.worker.abandoned}


def bench_live(size: int = 1024, seconds: float = 3.0, gpu: bool = False,
               model: str | None = None, modes: tuple[str, ...] = tuple(MODES),
               zooms: tuple[str, ...] = ZOOMS, window: tuple[int, int] = (1280, 960),
               log: Any = print, threads: int | None = None, view_px: int = 900
               ) -> dict[str, Any]:
    """Figures per mode and zoom, plus ``summary``: one line per cell in the issue's form."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
    tmp = tempfile.mkdtemp(prefix="thinkscope-bench-live-")
    os.environ.setdefault("THINKSCOPE_SETTINGS_DIR", os.path.join(tmp, "settings"))
    from qtpy.QtWidgets import QApplication

    from hardware import open_microscope
    from thinkscope_gui.learn import Enhancer

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    device = "cuda" if gpu else "cpu"
    if gpu:
        import torch

        if not torch.cuda.is_available():
            log("bench live: --gpu asked but no CUDA device is present; running on CPU")
            device = "cpu"
    out: dict[str, Any] = {"device": device, "size": size, "window": f"{window[0]}x{window[1]}"}
    summary: list[str] = []
    with open_microscope("sim", sensor=(size, size), mechanical_delays=False) as scope:
        enh = Enhancer.load(model, device=device)
        scope.set_objective(enh.lr_profile.label)
        win = MainWindow(scope, modal_errors=False, load_model=False)
        win.resize(*window)
        win.show()
        win.set_live(True)
        _pump(app, 30.0, lambda: win.view.frame is not None)
        if view_px:   # widen the window until the camera view is about view_px wide
            for _ in range(3):
                extra = int(view_px - win.view.view.width())
                if abs(extra) < 8:
                    break
                win.resize(win.width() + extra, win.height())
                _pump(app, 0.3)
        out["view"] = f"{win.view.view.width():.0f}x{win.view.view.height():.0f}"
        out["window"] = f"{win.width()}x{win.height()}"
        win.activate_model(enh.path)
        _pump(app, 60.0, lambda: win.models.enhancer is not None and not win.models.loading())
        if getattr(win.models.enhancer, "device", device) != device:
            win.models.enhancer = enh
        win.live.set_enhancer(win.models.enhancer)
        if threads:
            win.live.worker.torch_threads = int(threads)
        # the window warms the model up in the worker when it loads (as for a user, who
        # switches enhancement on after that); the simulator's own start-up work is not
        # the application's
        _pump(app, 60.0, lambda: win.live.worker.warmed.is_set() and _simulator_settled())
        out["model"] = str(enh.path)
        stall = StallMeter()
        try:
            for short in modes:
                mode = MODES[short]
                for i, zoom in enumerate(zooms):
                    if i == 0:  # switch into this mode while the last one works at fit
                        _set_zoom(win.view, zoom, short)
                        _pump(app, 0.5)
                        start = win.live.frames_enhanced
                        t0 = time.perf_counter()
                        win.set_overlay_mode(mode)
                        if not win.live.enhancing:
                            win.set_enhancing(True)
                        got = _pump(app, 10.0, lambda s=start: win.live.frames_enhanced > s)
                        first = (time.perf_counter() - t0) * 1000.0 if got else float("inf")
                        out[f"{short} switch_ms"] = round(first, 1)
                    else:
                        _set_zoom(win.view, zoom, short)
                    fig = _cell(app, win, stall, seconds)
                    out[f"{short} {zoom}"] = fig
                    line = (f"live {short} {zoom}: camera {fig['camera_fps']:.1f} fps, "
                            f"enhanced {fig['enhanced_fps']:.1f} fps, latency p95 "
                            f"{fig['latency_p95_ms']:.0f} ms, stall {fig['stall_ms']:.0f} ms")
                    log(f"{line}  (median {fig['latency_median_ms']:.0f} ms, enhancing "
                        f"{fig['enhancing']})")
                    summary.append(line)
                    fill = (f"live {short} {zoom} fill-in: visible region fully enhanced "
                            f"after {fig['fill_ms']} ms in {fig['tiles']} "
                            f"tile{'s' if fig['tiles'] > 1 else ''}")
                    log(fill)
                    summary.append(fill)
            win.set_enhancing(False)
        finally:
            stall.timer.stop()
            win.live.shutdown()
            win.close()
            _pump(app, 0.2)
    out["summary"] = summary
    return out


def bench_target(args: Any) -> dict[str, Any]:
    """``main.py bench live``: the options of the bench subcommand -> :func:`bench_live`."""
    return bench_live(size=args.size, seconds=min(args.seconds, 3.0), gpu=args.gpu,
                      model=args.model, log=(lambda *_: None) if args.json else print)
