"""Training straight from an HDF5 PairStore written by `main.py acquire` (simulator)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from thinkscope_gui.learn.modelfile import read_meta
from thinkscope_gui.learn.sources import StorePairSource
from thinkscope_gui.learn.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store") / "pairs.h5"
    subprocess.run([sys.executable, "main.py", "acquire", "--grid", "2x2", "--sensor", "256",
                    "--out", str(out), "--quiet"], cwd=ROOT, check=True, timeout=240,
                   capture_output=True)
    return out


def test_store_source_reads_registered_pairs(store: Path) -> None:
    src = StorePairSource(store)
    try:
        assert src.scale == pytest.approx(src.lr_profile.pixel_size_um
                                          / src.hr_profile.pixel_size_um)
        ids = src.pair_ids()
        assert ids
        lr, hr = src.lr(ids[0]), src.hr(ids[0])
        assert hr.shape[:2] == (round(lr.shape[0] * src.scale), round(lr.shape[1] * src.scale))
        assert {"tile_ix", "tile_iy"} <= set(src.meta(ids[0]))
    finally:
        src.close()


def test_trainer_trains_from_a_store(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    cfg = TrainConfig(stores=[str(store)], epochs=1, steps_per_epoch=2, batch_size=2, patch=32,
                      arch_params={"feats": 8, "layers": 1}, threads=1, val_fraction=0.25,
                      out=str(out))
    st = Trainer(cfg).run()
    assert st.state == "done", st.message
    assert st.metrics["bicubic_psnr"] > 20
    meta = read_meta(out)
    src = StorePairSource(store)
    try:
        expected = hashlib.sha256(src.fingerprint().encode()).hexdigest()
    finally:
        src.close()
    assert meta.data_fingerprint == expected
    assert meta.data_sources == [f"store:{store}"]
    assert meta.lr_profile.label == "40x" and meta.hr_profile.label == "100x"
