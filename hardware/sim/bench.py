"""Camera benchmark: how fast the simulator serves live frames and snaps.

Calls SimRenderer exactly as the live camera device does (render(..., live=True) per frame
from one thread), so the figures are what the live view can reach on this machine.
"""

from __future__ import annotations

import time

from hardware.sim import slide
from hardware.sim.render import SimRenderer


def bench_camera(shape: tuple[int, int] = (1024, 1024), seconds: float = 5.0, pan: bool = True,
                 objective: str = "40x", pan_fields_per_s: float = 0.25,
                 renderer: SimRenderer | None = None) -> dict:
    """Measure still/pan live fps and snap latency; returns a flat dict of numbers.

    Panning moves the stage diagonally at `pan_fields_per_s` field widths per second of
    wall time (as a joystick would), so a slow renderer sees larger jumps per frame.
    """
    r = renderer or SimRenderer()
    x0, y0 = 4000.0, -800.0
    opt = r.optics[objective]
    z = slide.slide_surface_z(x0, y0) + opt.true_parfocal_z_um
    out: dict = {"shape": list(shape), "objective": objective, "seconds": seconds}

    t = time.perf_counter()
    r.render(x0, y0, z, objective, shape, live=True)
    out["live_first_frame_ms"] = 1000 * (time.perf_counter() - t)

    budget = seconds / 2 if pan else seconds
    out["still_fps"] = _loop(lambda _: r.render(x0, y0, z, objective, shape, live=True), budget)

    if pan:
        speed = pan_fields_per_s * shape[1] * opt.pixel_size_um  # µm/s
        t0 = time.perf_counter()

        def pan_frame(_: int) -> None:
            d = speed * (time.perf_counter() - t0)
            r.render(x0 + d, y0 + 0.5 * d, z, objective, shape, live=True)

        out["pan_fps"] = _loop(pan_frame, budget)
        out["pan_speed_um_per_s"] = speed

    t = time.perf_counter()
    r.render(x0 + 333.3, y0 + 77.7, z, objective, shape)
    out["snap_ms"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    r.render(x0 + 333.3, y0 + 77.7, z + 0.3, objective, shape)
    out["snap_new_z_ms"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    r.render(x0 + 333.3, y0 + 77.7, z + 0.6, objective, shape, live=True)
    out["live_new_z_ms"] = 1000 * (time.perf_counter() - t)
    return out


def _loop(step, seconds: float) -> float:  # noqa: ANN001 - a frame callback
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(n)
        n += 1
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":  # pragma: no cover - manual use
    import json

    print(json.dumps(bench_camera(), indent=1))
