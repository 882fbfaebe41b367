"""`bench live` on the real window: every cell enhances, and the summary lines have the
issue's exact form (no speed is asserted here; figures belong to the bench)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

pytest_plugins = ["tests.test_ui_support"]

LINE = re.compile(r"^live (lens|side|wipe|blend|consistency) (fit|1:1|4x): camera [\d.]+ fps, "
                  r"enhanced [\d.]+ fps, latency p95 \d+ ms, stall \d+ ms$")


def test_bench_live_cells_and_summary(qapp: Any, ui_env: Path) -> None:
    from thinkscope_gui.ui.bench_live import bench_live

    logged: list[str] = []
    out = bench_live(size=256, seconds=0.4, modes=("side", "consistency"),
                     zooms=("fit", "4x"), log=logged.append)
    assert len(out["summary"]) == 4
    assert all(LINE.match(line) for line in out["summary"]), out["summary"]
    for key in ("side fit", "side 4x", "consistency fit", "consistency 4x"):
        assert out[key]["camera_fps"] > 0 and out[key]["enhanced_fps"] > 0, (key, out[key])
    # 4x shows a smaller part of the frame than fit, and only that part is enhanced
    fit_w = int(out["side fit"]["enhancing"].split("x")[0])
    zoom_w = int(out["side 4x"]["enhancing"].split("x")[0])
    assert zoom_w < fit_w
    assert out["side switch_ms"] > 0 and out["consistency switch_ms"] < float("inf")
