"""`main.py train` under torchrun: 2 CPU processes with gloo against 1 process, and a
killed rank. Real torchrun subprocesses, real HDF5 store, real signals; all bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.learn_helpers import synthetic_hr
from thinkscope_gui.learn.bench import synthetic_store
from thinkscope_gui.learn.checkpoint import load_checkpoint
from thinkscope_gui.learn.dataset import load_tiles, split_by_tile
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.learn.modelfile import read_meta
from thinkscope_gui.learn.models import build_model
from thinkscope_gui.learn.sources import StorePairSource
from thinkscope_gui.learn.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FAST: dict = {}  # the CLI trains the default fast network
torch.set_num_threads(1)


def make_store(path: Path, n: int = 8, lr_size: int = 48, seed: int = 0) -> Path:
    """A small real pair store: n tiles of synthetic tissue-like pictures, LR = HR / 2.5."""
    return synthetic_store(path, n=n, lr_size=lr_size, seed=seed, hr_image=synthetic_hr)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("ddp") / "pairs.h5")


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYMM_SIGNALS_BACKEND": "psygnal",
           "OMP_NUM_THREADS": "1", **extra}
    return env


def _torchrun(nproc: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(nproc), "main.py", "train", *args]


def _args(store: Path, out: Path, epochs: int, steps: int) -> list[str]:
    return ["--store", str(store), "--arch", "fast", "--epochs", str(epochs), "--steps",
            str(steps), "--batch", "8", "--patch", "16", "--threads", "1",
            "--val-fraction", "0.25", "--seed", "3", "--lr", "3e-3", "--out", str(out)]


def _stop_group(proc: subprocess.Popen) -> None:
    """Test clean-up only: end the session we started if an assertion left it running."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _shard_log(folder: Path) -> dict[int, list[dict]]:
    return {int(p.stem[4:]): [json.loads(line) for line in p.read_text().splitlines()]
            for p in folder.glob("rank*.jsonl")}


def _loadable_checkpoint(path: Path) -> int:
    model = build_model("fast", 3, 2.5, DEFAULT_FAST)
    opt = torch.optim.AdamW(model.parameters())
    return int(load_checkpoint(path, model, opt, None)["epoch"])


def test_two_gloo_ranks_train_the_same_model_as_one_process(store: Path, tmp_path: Path) -> None:
    epochs, steps = 2, 6
    # one process, in this process, same global batch and steps
    one = tmp_path / "one.safetensors"
    cfg = TrainConfig(stores=[str(store)], epochs=epochs, steps_per_epoch=steps,
                      batch_size=8, patch=16, threads=1, val_fraction=0.25, seed=3, lr=3e-3,
                      out=str(one))
    st1 = Trainer(cfg).run()
    assert st1.state == "done", st1.message

    two, log = tmp_path / "two.safetensors", tmp_path / "shards"
    args = _args(store, two, epochs, steps) + ["--dist-timeout", "60"]
    r = subprocess.run(_torchrun(2, args), cwd=ROOT,
                       env=_env(THINKSCOPE_SHARD_LOG=str(log)), capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "on 2 processes" in r.stdout and "done:" in r.stdout
    assert r.stdout.count("done:") == 1  # rank 0 alone reports

    # the ranks trained on disjoint tiles, all of them training (never validation) tiles
    src = StorePairSource(store)
    try:
        train, val = split_by_tile(load_tiles([src]), 0.25, 3)
    finally:
        src.close()
    key = lambda t: tuple(map(str, t.key))  # noqa: E731
    train_keys, val_keys = {key(t) for t in train}, {key(t) for t in val}
    shards = _shard_log(log)
    assert sorted(shards) == [0, 1]
    for epoch in range(epochs):
        mine = [{tuple(k) for rec in shards[r] if rec["epoch"] == epoch for k in rec["tiles"]}
                for r in (0, 1)]
        assert mine[0] and mine[1] and not mine[0] & mine[1]
        assert mine[0] | mine[1] == train_keys and not (mine[0] | mine[1]) & val_keys

    # the model file loads, enhances, records the world size, and matches one process
    meta1, meta2 = read_meta(one), read_meta(two)
    assert meta2.world_size == 2 and meta1.world_size == 1  # type: ignore[attr-defined]
    gain1 = meta1.metrics["psnr"] - meta1.metrics["bicubic_psnr"]
    gain2 = meta2.metrics["psnr"] - meta2.metrics["bicubic_psnr"]
    assert meta2.metrics["bicubic_psnr"] == pytest.approx(meta1.metrics["bicubic_psnr"], abs=1e-6)
    assert abs(gain2 - gain1) <= 0.3, (gain1, gain2)
    assert gain2 > 0  # it learned something beyond bicubic
    enh = Enhancer.load(two, device="cpu")
    frame = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    out = enh.enhance(frame)
    assert out.shape == (100, 100, 3) and out.dtype == np.uint8 and out.std() > 0

    # resume the 2-process checkpoint with 1 process: it continues, it does not restart
    st3 = Trainer(cfg.model_copy(update={"out": str(two), "epochs": epochs + 1,
                                         "resume": True})).run()
    assert st3.state == "done", st3.message
    assert [h["epoch"] for h in st3.history] == list(range(1, epochs + 2))
    assert read_meta(two).world_size in (1, 2)  # type: ignore[attr-defined]


def test_a_killed_rank_ends_the_job_and_keeps_the_checkpoint(store: Path,
                                                              tmp_path: Path) -> None:
    out, log = tmp_path / "k.safetensors", tmp_path / "shards"
    ckpt = Path(str(out) + ".ckpt.safetensors")
    out_file = (tmp_path / "torchrun.log").open("w")
    proc = subprocess.Popen(_torchrun(2, _args(store, out, 10_000, 2) + ["--dist-timeout", "60"]),
                            cwd=ROOT, env=_env(THINKSCOPE_SHARD_LOG=str(log)), stdout=out_file,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while not (ckpt.is_file() and (log / "rank1.jsonl").is_file()):
            assert proc.poll() is None, (tmp_path / "torchrun.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "training never wrote a checkpoint"
            time.sleep(0.2)
        victim = _shard_log(log)[1][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        rc = proc.wait(timeout=90)
        took = time.monotonic() - t0
    finally:
        _stop_group(proc)
        out_file.close()
    text = (tmp_path / "torchrun.log").read_text()
    assert rc != 0
    assert "SIGKILL" in text and "FAILED" in text, text[-3000:]
    assert took < 90
    for rec in _shard_log(log).values():  # no rank survives the job
        with pytest.raises(ProcessLookupError):
            os.kill(rec[0]["pid"], 0)
    assert _loadable_checkpoint(ckpt) >= 1
    assert read_meta(out).world_size == 2  # type: ignore[attr-defined]


def test_ranks_draw_exactly_the_one_process_global_batches(store: Path) -> None:
    """Per-rank batches of B/N items, put together, are the one-process batch of B items."""
    from torch.utils.data import DataLoader

    from thinkscope_gui.learn.dataset import PatchDataset
    from thinkscope_gui.learn.distributed import DistContext, ShardedPatches
    from thinkscope_gui.learn.meta import Normalisation

    src = StorePairSource(store)
    try:
        tiles = load_tiles([src])
    finally:
        src.close()
    norm = Normalisation(mean=[0.5] * 3, std=[0.25] * 3)
    steps, batch = 5, 8

    def make(ts):
        return PatchDataset(ts, 2.5, norm, 16, steps * batch, True, 7, 0.2)

    def batches(rank: int, world: int, epoch: int) -> list[torch.Tensor]:
        ds = ShardedPatches(tiles, make, steps * batch, DistContext(rank, world), 7)
        ds.set_epoch(epoch)
        return [x for x, _ in DataLoader(ds, batch_size=batch // world,
                                         sampler=ds.item_sampler())]

    for epoch in (0, 1):
        one = batches(0, 1, epoch)
        two = [batches(r, 2, epoch) for r in (0, 1)]
        assert len(one) == len(two[0]) == len(two[1]) == steps
        for s in range(steps):
            # rank r holds global items r, r+2, ...: interleave them back
            merged = torch.stack([two[k % 2][s][k // 2] for k in range(batch)])
            assert torch.equal(merged, one[s])
    with pytest.raises(Exception, match="cannot be shared"):
        ShardedPatches(tiles[:1], make, 8, DistContext(0, 2), 0)


def test_train_command_round_trips_every_setting() -> None:
    """train_command (the GUI's hand-off) expresses every TrainConfig field as a flag."""
    import shlex

    import main
    from thinkscope_gui.cli.train import config_from_args, train_command

    cfg = TrainConfig(
        stores=["a b.h5", "c.h5"], folders=["f"], sim_pairs=3, sim_tissues=["lymphoid"],
        sim_tile=64, sim_seed=4, arch="quality", arch_params={"feats": 24}, epochs=7,
        steps_per_epoch=11, batch_size=6, patch=32, lr=1e-3, weight_decay=0.01,
        schedule="step", loss="mse", ssim_weight=0.1, grad_weight=0.2, fft_weight=0.3,
        intensity_jitter=0.3,
        match_illumination=False, val_fraction=0.3, max_val_tiles=5, patience=2,
        min_delta_db=0.05, seed=9, warm_start="w.safetensors", out="o.safetensors",
        checkpoint="o.ckpt", resume=True, threads=3, device="cuda", augment="off",
        minutes=2.5)
    default = TrainConfig()
    assert all(getattr(cfg, f) != getattr(default, f)
               for f in TrainConfig.model_fields if f != "command")  # all set: none missed
    for nproc in (1, 4):
        argv = shlex.split(train_command(cfg, nproc))
        back = config_from_args(main.build_parser().parse_args(argv[argv.index("main.py") + 1:]))
        assert back.model_dump(exclude={"command"}) == cfg.model_dump(exclude={"command"})
        assert ("torch.distributed.run" in argv) == (nproc > 1)
