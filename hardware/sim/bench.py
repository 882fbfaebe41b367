"""Camera benchmark: how fast the simulator serves live frames and snaps.

Calls SimRenderer exactly as the live camera device does (render(..., live=True) per frame
from one thread), so the figures are what the live view can reach on this machine.
"""

from __future__ import annotations

import statistics
import time

from hardware.sim import slide
from hardware.sim.render import SimRenderer


def bench_camera(shape: tuple[int, int] = (1024, 1024), seconds: float = 5.0, pan: bool = True,
                 objective: str = "40x", pan_fields_per_s: float = 0.25,
                 renderer: SimRenderer | None = None,
                 pan_speeds: tuple[float, ...] = (1.0,)) -> dict:
    """Measure still/pan live fps, live z-change latency and snap latency (a flat dict).

    Panning moves the stage diagonally at `pan_fields_per_s` field widths per second of
    wall time (as a joystick would), so a slow renderer sees larger jumps per frame; it is
    reported as `pan_fps` and again, with each extra speed in `pan_speeds`, as
    `pan_fps_<speed>x` (e.g. `pan_fps_1x` = one field per second). `pan_settle_ms` is how
    long the live view takes, once the last pan stops, to be exact again.
    `live_z_change_ms` is the live frame after a focus step with the stage still;
    `live_new_z_ms` the live frame at a new z right after a snap at that position.
    """
    r = renderer or SimRenderer()
    x0, y0 = 4000.0, -800.0
    opt = r.optics[objective]
    z = slide.slide_surface_z(x0, y0) + opt.true_parfocal_z_um
    out: dict = {"shape": list(shape), "objective": objective, "seconds": seconds}
    speeds = [pan_fields_per_s] + [s for s in pan_speeds if s != pan_fields_per_s]
    budget = seconds / (1 + len(speeds)) if pan else seconds

    t = time.perf_counter()
    r.render(x0, y0, z, objective, shape, live=True)
    out["live_first_frame_ms"] = 1000 * (time.perf_counter() - t)
    if hasattr(r, "settle_live"):  # realistic stand: tiles are imaged in the background
        t = time.perf_counter()
        r.settle_live(x0, y0, z, objective, shape)
        out["live_settle_ms"] = 1000 * (time.perf_counter() - t)
    out["still_fps"] = _loop(lambda _: r.render(x0, y0, z, objective, shape, live=True), budget)

    steps = []
    for dz in (0.4, 0.8, 0.4, 1.2, 0.0):
        t = time.perf_counter()
        r.render(x0, y0, z + dz, objective, shape, live=True)
        steps.append(1000 * (time.perf_counter() - t))
    out["live_z_change_ms"] = statistics.median(steps)

    x, y = x0, y0
    if pan:
        for k, s in enumerate(speeds):
            speed = s * shape[1] * opt.pixel_size_um  # µm/s
            t0, xs, ys = time.perf_counter(), x, y

            def pan_frame(_: int, speed=speed, t0=t0, xs=xs, ys=ys) -> None:  # noqa: ANN001
                nonlocal x, y
                d = speed * (time.perf_counter() - t0)
                x, y = xs + d, ys + 0.5 * d
                r.render(x, y, z, objective, shape, live=True)

            fps = _loop(pan_frame, budget)
            if k == 0:
                out["pan_fps"] = fps
                out["pan_speed_um_per_s"] = speed
            out[f"pan_fps_{s:g}x"] = fps
        t = time.perf_counter()
        r.render(x, y, z, objective, shape, live=True)
        while not r.live_settled and time.perf_counter() - t < 60.0:
            r.render(x, y, z, objective, shape, live=True)
        out["pan_settle_ms"] = 1000 * (time.perf_counter() - t)

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
