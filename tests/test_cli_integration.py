"""The whole loop through main.py, small: acquisition, training and enhancement must fit."""

from __future__ import annotations

import re

import main


def test_demo_runs_the_whole_loop(tmp_path, capsys) -> None:
    rc = main.main(["demo", "--workdir", str(tmp_path), "--grid", "2", "--sensor", "256",
                    "--epochs", "1", "--steps", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert (tmp_path / "demo_pairs.h5").is_file()
    assert (tmp_path / "demo_model.safetensors").is_file()
    accepted = int(re.search(r"acquisition : (\d+) pairs accepted", out).group(1))
    assert accepted >= 2
    # 256 px frames come out at round(256 * 2.5) = 640 px
    assert "256x256 -> 640x640 (scale 2.5)" in out


def test_bench_camera_reports_live_and_renderer_figures(capsys) -> None:
    rc = main.main(["bench", "camera", "--size", "128", "--seconds", "0.5", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    for key in ("live_still_fps", "live_pan_fps", "renderer_still_fps", "renderer_snap_ms"):
        assert key in out
    assert re.search(r'"live_still_fps": [1-9]', out), out
