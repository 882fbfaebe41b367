"""`bench live` on the real window: every cell enhances, and the summary lines have the
issue's exact form (no speed is asserted here; figures belong to the bench)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

pytest_plugins = ["tests.test_ui_support"]

LINE = re.compile(r"^live (lens|side|wipe|blend|consistency) (fit|1:1|4x): camera [\d.]+ fps, "
                  r"enhanced [\d.]+ fps, latency p95 \d+ ms, stall \d+ ms$")
FILL = re.compile(r"^live (lens|side|wipe|blend|consistency) (fit|1:1|4x) fill-in: visible "
                  r"region fully enhanced after >?\d+ ms in \d+ tiles?$")


def test_bench_live_cells_and_summary(qapp: Any, ui_env: Path) -> None:
    from thinkscope_gui.ui.bench_live import bench_live

    logged: list[str] = []
    out = bench_live(size=256, seconds=0.4, modes=("side", "consistency"),
                     zooms=("fit", "4x"), log=logged.append)
    cells = [line for line in out["summary"]
             if "fill-in" not in line and not line.startswith("live: ")]
    # the load the figures were taken under ends the summary
    assert out["summary"][-1].startswith("live: load average "), out["summary"]
    fills = [line for line in out["summary"] if "fill-in" in line]
    assert len(cells) == 4 and len(fills) == 4, out["summary"]
    assert all(LINE.match(line) for line in cells), cells
    assert all(FILL.match(line) for line in fills), fills
    for key in ("side fit", "side 4x", "consistency fit", "consistency 4x"):
        assert out[key]["camera_fps"] > 0 and out[key]["enhanced_fps"] > 0, (key, out[key])
    # 4x shows a smaller part of the frame than fit, and only that part is enhanced
    def visible_w(cell: str) -> int:
        m = re.search(r"of (\d+)x\d+", out[cell]["enhancing"])
        assert m, out[cell]
        return int(m.group(1))

    assert visible_w("side 4x") < visible_w("side fit")
    assert out["side switch_ms"] > 0 and out["consistency switch_ms"] < float("inf")
