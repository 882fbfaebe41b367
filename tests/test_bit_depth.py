"""Bit depth travels with the frame: core -> Frame -> store -> training -> model file ->
Enhancer / live worker / consistency map, through one normalisation module.

The issue: a model trained on 12-bit frames (divisor 4095) was fed live uint16 frames
divided by 65535, 16 times too dark; the live result matched the correct one at 32 dB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch

from tests.test_ui_support import worker_result
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.learn.metrics import image_psnr_ssim
from thinkscope_gui.learn.modelfile import read_meta
from thinkscope_gui.learn.normalise import divisor_for, from_unit, resolve_bit_depth, to_unit
from thinkscope_gui.learn.sim_source import SimPairSource
from thinkscope_gui.learn.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def test_divisor_rules() -> None:
    u16, u8 = np.dtype(np.uint16), np.dtype(np.uint8)
    assert divisor_for(u16, 12) == 4095.0           # the frame's own bit depth wins
    assert divisor_for(u16, None, 12) == 4095.0     # else the model's record
    assert divisor_for(u16, None, 8) == 65535.0     # an 8-bit model says nothing of uint16
    assert divisor_for(u8, None, 12) == 255.0       # a uint8 frame cannot hold 12 bits
    assert divisor_for(np.float32, 12) == 1.0 and resolve_bit_depth(np.float32) is None
    with pytest.raises(ValueError, match="does not fit"):
        divisor_for(u8, 12)
    x = np.array([0, 1000, 4095, 4200], np.uint16)
    back = from_unit(to_unit(x, 4095.0), np.uint16, 4095.0)
    assert back.tolist() == [0, 1000, 4095, 4095]   # clipped to the camera's full scale


def test_frame_carries_the_core_bit_depth() -> None:
    from hardware import open_microscope

    scope = open_microscope("sim", sensor=(64, 64))
    try:
        depths = []
        for bits in ("8", "16"):
            scope.core.setProperty("Camera", "BitDepth", bits)
            scope.start_live()
            try:
                t0, frame = time.monotonic(), None
                while time.monotonic() - t0 < 10:
                    frame = scope.latest_frame()
                    if frame is not None and frame.image.dtype == (
                            np.uint8 if bits == "8" else np.uint16):
                        break
                    time.sleep(0.02)
            finally:
                scope.stop_live()
            assert frame is not None
            depths.append(frame.bit_depth)
        assert depths == [8, 16]
    finally:
        scope.close()


@pytest.fixture(scope="module")
def model12(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A tiny model trained on 12-bit simulated pairs, and a 12-bit 40x frame of another
    region to enhance."""
    out = tmp_path_factory.mktemp("m12") / "m12.safetensors"
    src = SimPairSource(4, tile=48, seed=1, bit_depth=12)
    cfg = TrainConfig(arch="fast", arch_params={"feats": 8, "layers": 1}, epochs=2,
                      steps_per_epoch=6, batch_size=4, patch=24, threads=1,
                      val_fraction=0.25, out=str(out), command="pytest")
    st = Trainer(cfg, sources=[src]).run()
    assert st.state == "done", st.message
    frame = SimPairSource(1, tile=64, seed=7, bit_depth=12).lr(0)
    assert frame.dtype == np.uint16 and 1000 < frame.max() <= 4095
    return out, frame


def test_model_file_records_the_bit_depth(model12) -> None:
    meta = read_meta(model12[0])
    assert meta.bit_depth == 12 and meta.normalisation.divisor == 4095.0
    # the learned normalisation is that of [0, 1] data: a 12-bit frame fills the range
    assert 0.3 < min(meta.normalisation.mean) < 1.0


def _live(qtbot: Any, enh: Enhancer, frame: np.ndarray, bit_depth: int | None,
          consistency: bool = False) -> Any:
    from thinkscope_gui.ui.enhance_worker import EnhanceJob

    return worker_result(qtbot, enh, EnhanceJob(frame, 1, bit_depth=bit_depth,
                                                consistency=consistency))


def test_12bit_frame_enhances_the_same_live_cli_and_api(model12, qtbot: Any,
                                                       tmp_path: Path) -> None:
    path, frame = model12
    enh = Enhancer.load(path, device="cpu")
    api = enh.enhance(frame, bit_depth=12)
    assert api.dtype == np.uint16 and api.max() <= 4095
    live = _live(qtbot, enh, frame, 12).enhanced          # the worker, as Frame.bit_depth
    live_nobits = _live(qtbot, enh, frame, None).enhanced  # no bit depth: model's record
    tif_in, tif_out = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(tif_in, frame, photometric="rgb")     # a plain 16-bit TIFF
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "enhance", str(tif_in),
                        str(tif_out), "--model", str(path), "--device", "cpu"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    cli = tifffile.imread(tif_out)
    wrong = enh.enhance(frame, bit_depth=16)  # the old behaviour: the dtype maximum
    ref = api.astype(np.float64) / 4095.0
    scores = {name: image_psnr_ssim(a.astype(np.float64) / 4095.0, ref)[0]
              for name, a in (("live", live), ("live_nobits", live_nobits), ("cli", cli),
                              ("dtype_max", wrong))}
    print("PSNR vs API (dB):", {k: round(v, 1) for k, v in scores.items()})
    for a in (live, live_nobits, cli):
        assert a.shape == api.shape and a.dtype == api.dtype
        assert int(np.abs(a.astype(np.int32) - api).max()) <= 1  # identical up to 1 DN
    assert scores["dtype_max"] < 45  # the divisor matters: dividing by 65535 is wrong


def test_consistency_map_uses_the_frame_bit_depth(model12, qtbot: Any) -> None:
    path, frame = model12
    enh = Enhancer.load(path, device="cpu")
    res = _live(qtbot, enh, frame, 12, consistency=True)
    sigma12 = res.heat_sigma                      # the live map, in units of noise σ
    e12 = enh.enhance(frame, bit_depth=12)
    assert sigma12.shape == frame.shape[:2]
    np.testing.assert_allclose(sigma12, enh.consistency_sigma(frame, e12, bit_depth=12),
                               rtol=1e-4, atol=1e-4)
    # the same scene as a 16-bit frame: x16 in value, same physics -> the same map
    f16 = (frame.astype(np.uint32) * 16).astype(np.uint16)
    e16 = (e12.astype(np.uint32) * 16).astype(np.uint16)
    np.testing.assert_allclose(sigma12, enh.consistency_sigma(f16, e16, bit_depth=16),
                               rtol=1e-2, atol=1e-2)
    heat12 = enh.consistency(frame, e12, bit_depth=12)
    np.testing.assert_allclose(heat12, enh.consistency(f16, e16, bit_depth=16), atol=2e-3)
    # divided by the dtype maximum the 12-bit map would read 16x too small
    wrong = enh.consistency(frame, e12, bit_depth=16)
    assert float(heat12.mean()) > 8 * float(wrong.mean())
