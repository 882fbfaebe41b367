"""The live consistency map takes the camera's noise from two frames of the same still
field: a colour camera's demosaicing spreads each pixel's noise over its neighbours, which
a one-frame estimate reads several times too low (and the map then lights up everywhere)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from tests.test_learn_consistency_sigma import _bilinear_demosaic
from tests.test_ui_support import make_model, worker_result
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.ui.camera_view import OverlayMode

pytest_plugins = ["tests.test_ui_support"]


def _glass(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """Clean glass seen by a colour camera: a flat mosaic with 4 DN of noise, demosaiced."""
    mosaic = 128.0 + 4.0 * rng.standard_normal((size, size))
    return np.clip(np.rint(_bilinear_demosaic(mosaic)), 0, 255).astype(np.uint8)


def _map(qtbot: Any, enh: Enhancer, frame: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    from thinkscope_gui.ui.enhance_worker import EnhanceJob

    job = EnhanceJob(frame, 2, consistency=True, prev_image=prev)
    return worker_result(qtbot, enh, job).heat_sigma


def test_the_live_map_of_a_colour_camera_keeps_glass_dark(qtbot: Any, tmp_path: Path) -> None:
    from hardware.profiles import DEFAULT_PROFILES_PATH, load_profiles

    profiles = load_profiles(DEFAULT_PROFILES_PATH)
    path = make_model(tmp_path / "m.safetensors", SimpleNamespace(profile=profiles.__getitem__))
    enh = Enhancer.load(path, device="cpu")   # untrained: exactly bicubic, an honest one
    rng = np.random.default_rng(3)
    frame, before = _glass(rng), _glass(rng)
    two = _map(qtbot, enh, frame, before)       # noise from the frame and the one before
    one = _map(qtbot, enh, frame, None)         # from the frame alone
    assert float(np.mean(two < 2.0)) >= 0.99, np.percentile(two, [50, 99])
    assert float(np.median(one)) > 2.5 * float(np.median(two))   # what it replaces


def test_consistency_jobs_carry_the_frame_before_of_the_same_field(qtbot: Any,
                                                                   enhancing: Any) -> None:
    w = enhancing
    jobs: list[Any] = []
    submit = w.live.worker.submit

    def spy(job: Any) -> None:
        jobs.append(job)
        submit(job)

    w.live.worker.submit = spy
    w.set_overlay_mode(OverlayMode.CONSISTENCY)
    w.set_enhancing(True)
    qtbot.waitUntil(lambda: len(jobs) >= 6, timeout=30000)
    later = jobs[2:]
    assert all(j.prev_image is not None and j.prev_image is not j.image
               and j.prev_image.shape == j.image.shape for j in later)
    # a stage move: the first frame of the new field has no frame before it there
    x0, y0 = w.scope.xy()
    n = len(jobs)
    w.scope.set_xy(x0 + 30.0, y0)
    x = round(x0 + 30.0, 3)
    qtbot.waitUntil(lambda: any(j.position is not None and j.position[0] == x
                                for j in jobs[n:]), timeout=20000)
    first = next(j for j in jobs[n:] if j.position is not None and j.position[0] == x)
    assert first.prev_image is None
