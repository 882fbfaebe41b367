"""SIGINT/SIGTERM to a real `main.py train` subprocess: a clean cancel every time.

Each run gets its signal at a random moment after start-up (loading, a step, validation or
a checkpoint write), is bounded by a timeout, and must end with the summary, exit code
130/143 and a loadable last checkpoint. The torchrun case signals the whole process group,
as Ctrl-C in a terminal does, and every rank must stop."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.learn_helpers import make_folder_pairs
from thinkscope_gui.learn.checkpoint import load_checkpoint
from thinkscope_gui.learn.modelfile import load_model
from thinkscope_gui.learn.models import build_model

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return make_folder_pairs(tmp_path_factory.mktemp("pairs"), n=6)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYMM_SIGNALS_BACKEND": "psygnal",
            "OMP_NUM_THREADS": "1", **extra}


def _train_args(pairs: Path, out: Path) -> list[str]:
    return ["train", "--pairs-dir", str(pairs), "--epochs", "10000", "--steps", "3",
            "--batch", "4", "--patch", "16", "--threads", "1", "--val-fraction", "0.34",
            "--out", str(out)]


def _check_kept_files(out: Path) -> None:
    """Whatever exists after the cancel is whole: the checkpoint and the model load."""
    ckpt = Path(str(out) + ".ckpt.safetensors")
    if ckpt.is_file():
        model = build_model("fast", 3, 2.5, None)
        state = load_checkpoint(ckpt, model, torch.optim.AdamW(model.parameters()), None)
        assert state["epoch"] >= 1
    if out.is_file():
        load_model(out)
    assert not list(out.parent.glob("*.tmp"))


def _start(cmd: list[str], log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(**env), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(cond, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        assert proc.poll() is None, f"exited before {what}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} in {TIMEOUT} s"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen) -> int:
    try:
        return proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own session; the test fails below
        proc.wait(10)
        pytest.fail(f"train did not stop within {TIMEOUT} s of the signal (hang)")


def test_signals_cancel_train_cleanly(pairs: Path, tmp_path: Path) -> None:
    """Two SIGINT and two SIGTERM runs side by side, each at a random moment."""
    rng = random.Random(9)
    runs = []
    for k, sig in enumerate([signal.SIGINT, signal.SIGTERM] * 2):
        out, log = tmp_path / f"{k}.safetensors", tmp_path / f"{k}.log"
        proc = _start([sys.executable, "main.py", *_train_args(pairs, out)], log)
        runs.append((sig, out, log, proc))
    for sig, _out, log, proc in runs:
        # the tqdm bar appears once the handlers are in; then any moment is fair game
        _wait_for(lambda log=log: "step" in log.read_text(errors="replace"), proc, log, "start")
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(sig)
    for sig, out, log, proc in runs:
        rc = _finish(proc)
        text = log.read_text(errors="replace")
        assert rc == 128 + sig, text[-2000:]
        assert f"cancelled by {sig.name}" in text and "continue with --resume" in text, text[-2000:]
        assert "Traceback" not in text
        _check_kept_files(out)


def test_ctrl_c_stops_every_torchrun_rank(pairs: Path, tmp_path: Path) -> None:
    out, log, shards = tmp_path / "d.safetensors", tmp_path / "d.log", tmp_path / "shards"
    ckpt = Path(str(out) + ".ckpt.safetensors")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "main.py", *_train_args(pairs, out)]
    proc = _start(cmd, log, THINKSCOPE_SHARD_LOG=str(shards))
    _wait_for(lambda: ckpt.is_file() and len(list(shards.glob("rank*.jsonl"))) == 2, proc, log,
              "checkpoint")
    pids = [json.loads((shards / f"rank{r}.jsonl").read_text().splitlines()[0])["pid"]
            for r in (0, 1)]
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    _finish(proc)
    text = log.read_text(errors="replace")
    assert text.count("cancelled by SIGINT") == 1, text[-3000:]  # rank 0 reports, once
    assert "failed" not in text.lower().replace("childfailederror", ""), text[-3000:]
    for pid in pids:  # every rank has ended
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    _check_kept_files(out)
