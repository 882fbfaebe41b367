"""Dataset alignment, split by tile, and the Trainer (events, checkpoints, guards)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.learn_helpers import make_folder_pairs
from thinkscope_gui.learn.dataset import PatchDataset, Tile, load_tiles, split_by_tile
from thinkscope_gui.learn.meta import Normalisation
from thinkscope_gui.learn.modelfile import load_model, read_meta
from thinkscope_gui.learn.sources import FolderPairSource
from thinkscope_gui.learn.train import TrainConfig, Trainer, TrainStatus

torch.set_num_threads(1)
TINY = {"arch": "fast", "arch_params": {"feats": 8, "layers": 1}, "steps_per_epoch": 4,
        "batch_size": 4, "patch": 16, "threads": 1, "val_fraction": 0.34}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_folder_pairs(tmp_path_factory.mktemp("pairs"), n=6)


def test_patches_are_aligned_on_the_even_lr_grid() -> None:
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 255, (40, 40), dtype=np.uint8)
    idx = (np.arange(100) / 2.5).astype(int)
    hr = lr[idx][:, idx]                       # HR pixel k lies inside LR pixel floor(k/2.5)
    tile = Tile(lr=lr, hr=hr, divisor=255.0, key=("t", 0), source="x")
    ds = PatchDataset([tile], 2.5, Normalisation(mean=[0.0], std=[1.0]), patch=10,
                      length=50, augment=True, seed=3)
    for i in range(len(ds)):
        x, y = ds[i]
        assert y.shape[-1] == 25
        for r, c in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:   # corners map onto corners
            assert x[0, r, c] == y[0, r, c]


def test_split_is_by_tile_position(pairs) -> None:
    tiles = load_tiles([FolderPairSource(pairs)])
    train, val = split_by_tile(tiles, 0.34, seed=1)
    assert train and val
    assert not {t.key for t in train} & {t.key for t in val}
    assert len(train) + len(val) == len(tiles)


def test_trainer_reports_metrics_and_writes_a_model(pairs, tmp_path) -> None:
    events: list[TrainStatus] = []
    out = tmp_path / "m.safetensors"
    cfg = TrainConfig(folders=[str(pairs)], epochs=2, out=str(out), command="pytest",
                      min_delta_db=0.0, **TINY)  # every gain counts: the file holds the best
    st = Trainer(cfg, events.append).run()
    assert st.state == "done", st.message
    states = {e.state for e in events}
    assert {"loading", "training", "validating", "done"} <= states
    m = st.metrics
    assert {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim"} <= set(m)
    assert 10 < m["bicubic_psnr"] < 60 and 0 < m["ssim"] <= 1
    assert len(st.history) == 2
    meta = read_meta(out)
    assert meta.command == "pytest" and meta.epochs >= 1 and meta.data_fingerprint
    assert meta.metrics["psnr"] == pytest.approx(max(h["psnr"] for h in st.history))
    assert cfg.checkpoint_path().is_file()

    # resume continues after the last finished epoch, not from scratch
    cfg2 = cfg.model_copy(update={"epochs": 3, "resume": True})
    st2 = Trainer(cfg2).run()
    assert st2.state == "done" and [h["epoch"] for h in st2.history] == [1, 2, 3]


def test_fixed_seed_is_reproducible(pairs, tmp_path) -> None:
    weights = []
    for k in range(2):
        cfg = TrainConfig(folders=[str(pairs)], epochs=1, out=str(tmp_path / f"{k}.st"), **TINY)
        assert Trainer(cfg).run().state == "done"
        weights.append(load_model(cfg.out)[0].state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_warm_start_begins_from_the_given_model(pairs, tmp_path) -> None:
    base = tmp_path / "base.st"
    cfg = TrainConfig(folders=[str(pairs)], epochs=2, out=str(base), **TINY)
    first = Trainer(cfg).run()
    warm = TrainConfig(folders=[str(pairs)], epochs=1, out=str(tmp_path / "w.st"),
                       warm_start=str(base), **{**TINY, "steps_per_epoch": 1})
    st = Trainer(warm).run()
    assert st.state == "done"
    assert read_meta(tmp_path / "w.st").warm_start_from == str(base)
    # one tiny step from the warm model stays near it, far from a fresh bicubic start
    assert abs(st.metrics["psnr"] - first.metrics["psnr"]) < abs(
        first.metrics["psnr"] - first.metrics["bicubic_psnr"]) + 0.5
    bad = warm.model_copy(update={"arch": "quality", "arch_params": {}})
    st_bad = Trainer(bad).run()
    assert st_bad.state == "failed" and "warm start" in st_bad.message


def test_nan_guard_stops_with_a_clear_message(tmp_path) -> None:
    class NanSource:
        name, scale, channels, bit_depth = "nan", 2.5, 1, 8
        from hardware.profiles import load_profiles as _lp
        lr_profile, hr_profile = _lp()["40x"], _lp()["100x"]

        def pair_ids(self):
            return [0, 1]

        def lr(self, i):
            return np.full((32, 32), 0.5, np.float32)

        def hr(self, i):
            return np.full((80, 80), np.nan, np.float32)

        def meta(self, i):
            return {"tile_ix": i, "tile_iy": 0}

        def fingerprint(self):
            return "nan"

    cfg = TrainConfig(epochs=1, out=str(tmp_path / "n.st"), **TINY)
    st = Trainer(cfg, sources=[NanSource()]).run()
    assert st.state == "failed" and "diverged" in st.message and "learning rate" in st.message
    assert not (tmp_path / "n.st").exists()


def test_cancel_from_another_thread(pairs, tmp_path) -> None:
    cfg = TrainConfig(folders=[str(pairs)], epochs=50, out=str(tmp_path / "c.st"), **TINY)
    trainer: Trainer

    def on_event(st: TrainStatus) -> None:
        if st.state == "training" and st.step >= 2:
            trainer.cancel()

    trainer = Trainer(cfg, on_event)
    trainer.start()
    st = trainer.wait(120)
    assert st.state == "cancelled" and st.epoch < 50


def test_early_stopping_when_validation_stalls(pairs, tmp_path) -> None:
    cfg = TrainConfig(folders=[str(pairs)], epochs=10, patience=2, lr=1e-12,
                      out=str(tmp_path / "e.st"), **TINY)
    st = Trainer(cfg).run()
    assert st.state == "stopped_early" and len(st.history) == 3, st
    assert "no validation gain" in st.message


def test_illumination_match_removes_a_smooth_gain_only() -> None:
    from scipy.ndimage import gaussian_filter

    from thinkscope_gui.learn.dataset import match_illumination

    rng = np.random.default_rng(4)
    hr = gaussian_filter(rng.random((100, 100, 3)), (1.5, 1.5, 0)) * 0.5 + 0.3
    lr = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(hr.transpose(2, 0, 1))[None], (40, 40))[0].numpy().transpose(1, 2, 0)
    yy, xx = np.mgrid[0:100, 0:100] / 100.0
    vignetted = hr * (0.9 - 0.1 * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2))[..., None]
    fixed = match_illumination(lr.astype(np.float32), vignetted.astype(np.float32))
    assert np.abs(vignetted - hr).mean() > 0.03
    assert np.abs(fixed - hr).mean() < 0.1 * np.abs(vignetted - hr).mean()
    # fine detail is untouched: high-pass of the fix equals high-pass of the truth
    hp = lambda a: a - gaussian_filter(a, (4, 4, 0))  # noqa: E731
    assert np.abs(hp(fixed) - hp(hr)).mean() < 0.1 * np.abs(hp(hr)).mean()
