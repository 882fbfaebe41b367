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

A wall-clock stall also counts waiting: for a CPU on a loaded machine, and for the GIL
held by another thread. Each cell line says how the worst stall splits (the GUI thread's
own CPU time and its wait in the run queue, from Linux schedstat); the last line gives
the load average, CPU pressure and the garbage collections during the run. ``--explain``
adds, per stall over 50 ms, that split, the collections within it and what every thread
was doing (stall_sampler.StackSampler).
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .stall_watchdog import StallWatchdog

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


class GcLog:
    """Python's cyclic garbage collections (generation, start, seconds) while installed:
    a gen-2 pass over a big heap stops every thread, the GUI thread included."""

    def __init__(self) -> None:
        self.passes: list[tuple[int, float, float]] = []
        self._t0 = 0.0

    def __enter__(self) -> GcLog:
        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._t0 = now
        else:
            self.passes.append((int(info.get("generation", -1)), self._t0, now - self._t0))

    def within(self, t0: float, t1: float) -> list[tuple[int, float, float]]:
        return [p for p in self.passes if p[1] < t1 and p[1] + p[2] > t0]


def _set_zoom(view: Any, zoom: str, mode: str) -> None:
    """Fit, one camera pixel per screen pixel, or 4 screen pixels per camera pixel, centred
    on the frame (on the enhanced panel side by side), as the view's zoom buttons do."""
    view.fit()
    if zoom == "fit":
        return
    h, w = view.frame.shape[:2]
    view.zoom_to(1.0 if zoom == "1:1" else 4.0, (1.5 * w if mode == "side" else w / 2, h / 2))


def _cell(app: Any, win: Any, stall: StallWatchdog, seconds: float, label: str
          ) -> dict[str, Any]:
    live = win.live
    _pump(app, 0.6)  # settle: the budget follows the new target
    stall.label = label
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
            "stall_ms": round(stall.worst_s * 1000.0, 1),
            "stall_gui_work_ms": round(stall.worst_split[0] * 1000.0, 1),
            "stall_cpu_wait_ms": round(stall.worst_split[1] * 1000.0, 1),
            "enhancing": enhancing, "fill_ms": fill, "tiles": n_tiles,
            "stale_dropped": live.stale_results, "abandoned": live.worker.abandoned}


def bench_live(size: int = 1024, seconds: float = 3.0, gpu: bool = False,
               model: str | None = None, modes: tuple[str, ...] = tuple(MODES),
               zooms: tuple[str, ...] = ZOOMS, window: tuple[int, int] = (1280, 960),
               log: Any = print, threads: int | None = None, view_px: int = 900,
               explain: bool = False) -> dict[str, Any]:
    """Figures per mode and zoom, plus ``summary``: one line per cell in the issue's form.
    ``explain``: sample every thread's stack and say what each did in every stall over
    50 ms (and which garbage collections fell in it)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
    tmp = tempfile.mkdtemp(prefix="thinkscope-bench-live-")
    os.environ.setdefault("THINKSCOPE_SETTINGS_DIR", os.path.join(tmp, "settings"))
    from qtpy.QtWidgets import QApplication

    from hardware import open_microscope
    from thinkscope_gui.learn import Enhancer

    from .main_window import MainWindow
    from .stall_sampler import StackSampler
    from .stall_watchdog import StallWatchdog

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
        win.freeze_heap = True   # as run_gui does
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
        stall = StallWatchdog(interval_ms=2).start()
        sampler = StackSampler().start() if explain else None
        gclog = GcLog().__enter__()
        try:
            for short in modes:
                mode = MODES[short]
                for i, zoom in enumerate(zooms):
                    stall.label = f"{short} {zoom} (switch and settle)"
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
                    fig = _cell(app, win, stall, seconds, f"{short} {zoom}")
                    out[f"{short} {zoom}"] = fig
                    line = (f"live {short} {zoom}: camera {fig['camera_fps']:.1f} fps, "
                            f"enhanced {fig['enhanced_fps']:.1f} fps, latency p95 "
                            f"{fig['latency_p95_ms']:.0f} ms, stall {fig['stall_ms']:.0f} ms")
                    log(f"{line}  (median {fig['latency_median_ms']:.0f} ms, enhancing "
                        f"{fig['enhancing']}; worst stall: GUI-thread work "
                        f"{fig['stall_gui_work_ms']:.0f} ms, waiting for a CPU "
                        f"{fig['stall_cpu_wait_ms']:.0f} ms)")
                    summary.append(line)
                    fill = (f"live {short} {zoom} fill-in: visible region fully enhanced "
                            f"after {fig['fill_ms']} ms in {fig['tiles']} "
                            f"tile{'s' if fig['tiles'] > 1 else ''}")
                    log(fill)
                    summary.append(fill)
            win.set_enhancing(False)
        finally:
            gclog.__exit__()
            stall.stop()
            if sampler is not None:
                sampler.stop()
            win.live.shutdown()
            win.close()
            _pump(app, 0.2)
    pressure = stall.cpu_pressure()
    out["load_average"] = round(os.getloadavg()[0], 1)
    out["cpu_pressure_percent"] = None if pressure is None else round(100 * pressure, 1)
    gen2 = [d for g, _, d in gclog.passes if g == 2]
    out["gc"] = {"passes": len(gclog.passes), "gen2": len(gen2),
                 "gen2_worst_ms": round(max(gen2, default=0.0) * 1000.0, 1)}
    load = (f"live: load average {out['load_average']:.1f} on {os.cpu_count()} cores"
            + ("" if pressure is None else f", CPU pressure {pressure * 100:.0f} %")
            + f"; {len(gclog.passes)} garbage collections, {len(gen2)} of generation 2 "
            f"(worst {out['gc']['gen2_worst_ms']:.0f} ms)")
    if explain:
        log(explain_stalls(stall, sampler, gclog))
    log(load)
    summary.append(load)
    out["summary"] = summary
    return out


def explain_stalls(stall: StallWatchdog, sampler: Any, gclog: GcLog) -> str:
    """One block per GUI-thread stall over the meter's threshold: its cell, length, the
    GUI thread's own CPU time in it, garbage collections within it, and what every
    thread was doing (the stack sampler)."""
    out = []
    for label, gap, t0, t1, busy, runq in stall.spans:
        gcs = ", ".join(f"gen {g} {d * 1000:.0f} ms" for g, _, d in gclog.within(t0, t1))
        out.append(f"stall {gap * 1000:.0f} ms ({label}; GUI thread: work {busy * 1000:.0f} "
                   f"ms, waiting for a CPU {runq * 1000:.0f} ms, asleep (GIL) "
                   f"{(gap - busy - runq) * 1000:.0f} ms; gc: {gcs or 'none'})"
                   + ("" if sampler is None else f":\n{sampler.explain(t0, t1)}"))
    return "\n".join(out) if out else "no stall over 50 ms"


def bench_target(args: Any) -> dict[str, Any]:
    """``main.py bench live``: the options of the bench subcommand -> :func:`bench_live`."""
    return bench_live(size=args.size, seconds=min(args.seconds, 3.0), gpu=args.gpu,
                      model=args.model, log=(lambda *_: None) if args.json else print,
                      explain=bool(getattr(args, "explain", False)))
