"""Live-mode benchmark through the whole stack: Micro-Manager core, Python camera device,
facade. The renderer bench (hardware.sim.bench) measures the physics alone; this one
measures what a live view actually receives."""

from __future__ import annotations

import time

from hardware import open_microscope
from hardware.sim.slide import slide_surface_z


def _count_frames(scope, seconds: float, step=None) -> float:  # noqa: ANN001
    """New frames per second seen by a display polling latest_frame()."""
    last, n = None, 0
    t0 = time.perf_counter()
    while (now := time.perf_counter()) - t0 < seconds:
        if step is not None:
            step(now - t0)
        f = scope.latest_frame()
        if f is not None and f.number != last:
            last, n = f.number, n + 1
        else:
            time.sleep(0.001)
    return n / (time.perf_counter() - t0)


def bench_live(shape: tuple[int, int] = (1024, 1024), seconds: float = 4.0,
               exposure_ms: float = 10.0, fields_per_s: float = 1.0,
               source: str = "sim") -> dict[str, float]:
    """Live fps with the stage still and while it pans at `fields_per_s` field widths/s,
    on the simulated stand `source` ("sim" or "sim:realistic")."""
    with open_microscope(source, sensor=shape) as scope:
        scope.set_objective("40x")
        scope.set_xy(4000.0, -800.0)
        renderer = scope.core.sim_world.renderer()
        # in focus, as an operator would look at it (the simulator knows its focal plane)
        scope.set_z(slide_surface_z(*scope.xy()) + renderer.optics["40x"].true_parfocal_z_um)
        scope.set_exposure(exposure_ms)
        t0 = time.perf_counter()
        scope.start_live()
        while scope.latest_frame() is None and time.perf_counter() - t0 < 120.0:
            time.sleep(0.005)
        first_s = time.perf_counter() - t0
        # every tile exact (the realistic stand images its tiles in the background)
        while not renderer.live_settled and time.perf_counter() - t0 < 180.0:
            time.sleep(0.02)
        settle_s = time.perf_counter() - t0
        _count_frames(scope, 1.0)  # caches settle
        still = _count_frames(scope, seconds)
        speed = fields_per_s * shape[1] * scope.pixel_size_um()
        x0, y0 = scope.xy()

        def pan(t: float) -> None:
            scope.set_xy(x0 + speed * t, y0 + 0.5 * speed * t)

        panning = _count_frames(scope, seconds, pan)
        scope.stop_live()
    return {"live_first_frame_s": round(first_s, 2), "live_exact_after_s": round(settle_s, 2),
            "live_still_fps": round(still, 1), "live_pan_fps": round(panning, 1),
            "pan_um_per_s": round(speed, 1), "exposure_ms": exposure_ms}
