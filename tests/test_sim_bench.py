"""The camera benchmark runs the live path and reports sane numbers."""

from __future__ import annotations

from hardware.sim.bench import bench_camera


def test_bench_camera_reports_rates() -> None:
    out = bench_camera(shape=(128, 128), seconds=0.4, pan=True)
    for key in ("still_fps", "pan_fps", "snap_ms", "snap_new_z_ms", "live_first_frame_ms",
                "pan_fps_0.25x", "pan_fps_1x", "pan_settle_ms", "live_z_change_ms",
                "live_new_z_ms"):
        assert out[key] > 0.0
    assert out["pan_speed_um_per_s"] > 0.0
