"""Acquisition throughput on the simulator: pairs per minute and where the time goes.

Why a separate bench (not a test): speed depends on the machine; the figures are reported,
never asserted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from .engine import AcquisitionEngine
from .plan import AcquisitionPlan


def bench_acquire(grid: tuple[int, int] = (4, 4), delays: bool = False,
                  sensor: tuple[int, int] = (1024, 1024),
                  center_um: tuple[float, float] = (5000.0, 0.0),
                  out: str | Path | None = None, source: str = "sim") -> dict[str, Any]:
    """Acquire a grid on a simulated stand (``source``: "sim" or "sim:realistic") and report
    pairs/min with a per-phase breakdown.

    ``delays`` turns on the simulator's mechanical delays (stage, focus, turret travel).
    """
    from hardware import open_microscope

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(out) if out is not None else Path(tmp) / "bench_pairs.h5"
        plan = AcquisitionPlan(center_um=center_um, grid=grid, output=str(path))
        scope = open_microscope(source, sensor=sensor, mechanical_delays=delays)
        try:
            t0 = time.perf_counter()
            status = AcquisitionEngine(plan, scope).run()
            wall = time.perf_counter() - t0
        finally:
            scope.close()
    pairs = status.accepted + status.rejected
    phases = {k: round(v, 3) for k, v in status.timings.items()}
    accounted = sum(phases.values())
    phases["other"] = round(max(0.0, wall - accounted), 3)
    return {
        "stand": source, "grid": f"{grid[0]}x{grid[1]}", "sensor": f"{sensor[0]}x{sensor[1]}",
        "mechanical_delays": delays, "state": status.state.value, "message": status.message,
        "pairs": pairs, "accepted": status.accepted, "rejected": status.rejected,
        "reasons": dict(status.reasons), "seconds": round(wall, 2),
        "pairs_per_min": round(60.0 * pairs / wall, 2) if wall > 0 else 0.0,
        "phase_seconds": phases,
        "phase_percent": {k: round(100.0 * v / wall, 1) for k, v in phases.items()} if wall else {},
        "measured_offset": status.measured_offset,
    }
