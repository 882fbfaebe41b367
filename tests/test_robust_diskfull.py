"""A full disk during acquisition: a clear error, never silent corruption.

Real short-space conditions only: a 3-6 MB tmpfs (we run as root in CI; skipped with the
reason when mounting is not permitted) and RLIMIT_FSIZE in a subprocess, where the kernel
refuses the write and h5py raises what it really raises.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from thinkscope_gui.pairs.engine import AcquisitionEngine, AcquisitionEvent
from thinkscope_gui.pairs.plan import AcquisitionPlan

hardware = pytest.importorskip("hardware")
from hardware import open_microscope  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), PYMM_SIGNALS_BACKEND="psygnal", THINKSCOPE_HOME=str(home),
               QT_QPA_PLATFORM="offscreen",
               PYMM_LOG_FILE=str(home / "pymm.log"))  # fresh: RLIMIT_FSIZE applies to logs too
    return env


def _acquire(out: Path, home: Path, *extra: str, preexec=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "main.py"), "acquire", "--sensor", "256", "--quiet",
           "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=_env(home), capture_output=True, text=True,
                          timeout=240, preexec_fn=preexec)


@pytest.fixture()
def tmpfs(tmp_path: Path):
    """A 3 MB tmpfs; yields (mount point, remount(size) callable)."""
    mnt = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")

    def remount(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)

    try:
        yield mnt, remount
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _check_committed(path: Path) -> tuple[int, int]:
    """Every committed row holds real pixels (no all-zero frames behind a commit mark)."""
    with h5py.File(path, "r") as f:
        nt, n_p = int(f.attrs["committed_lr_tiles"]), int(f.attrs["committed_pairs"])
        for i in range(nt):
            assert f["lr_tiles/frames"][i].max() > 0, f"LR tile {i} is all zeros"
        for i in range(n_p):
            if f["pairs/reason"][i] in (b"no tissue", "no tissue"):
                continue  # glass tiles are stored blank by design
            for name in ("lr", "hr", "hr_raw"):
                assert f[f"pairs/{name}"][i].max() > 0, f"pair {i} {name} is all zeros"
        tiles = list(f["pairs/tile_index"][:n_p])
        assert len(tiles) == len(set(tiles)), "duplicate pairs"
    return nt, n_p


def _assert_clean_failure(r: subprocess.CompletedProcess, out: Path) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-3000:]
    assert str(out) in r.stderr and "MB" in r.stderr  # names the file and the free space
    assert "--resume" in r.stderr


def test_tmpfs_full_is_a_clear_error_and_resume_finishes(tmpfs, tmp_path: Path) -> None:
    mnt, remount = tmpfs
    out = mnt / "pairs.h5"
    r = _acquire(out, tmp_path / "home", "--grid", "4x4")
    _assert_clean_failure(r, out)
    assert "disk full" in r.stderr
    nt, n_p = _check_committed(out)
    assert nt < 16 or n_p < 16
    remount("40m")  # space freed
    r2 = _acquire(out, tmp_path / "home", "--resume")
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert _check_committed(out) == (16, 16)


def test_file_size_limit_mid_hr_phase_keeps_a_valid_file(tmp_path: Path) -> None:
    """RLIMIT_FSIZE: the write itself fails inside HDF5 (EFBIG), past our free-space check."""
    out = tmp_path / "pairs.h5"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_500_000, 2_500_000))

    r = _acquire(out, tmp_path / "home", "--grid", "3x3", preexec=limit)
    _assert_clean_failure(r, out)
    assert "file size limit" in r.stderr
    nt, n_p = _check_committed(out)
    assert n_p < 9
    r2 = _acquire(out, tmp_path / "home", "--resume")  # continues the stored 3x3 plan
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert _check_committed(out) == (9, 9)


def test_engine_reports_failed_on_a_full_disk(tmpfs) -> None:
    mnt, _ = tmpfs
    scope = open_microscope("sim", sensor=(256, 256))
    events: list[AcquisitionEvent] = []
    try:
        plan = AcquisitionPlan(grid=(4, 4), output=str(mnt / "f.h5"))
        status = AcquisitionEngine(plan, scope, events.append).run()
    finally:
        scope.close()
    assert status.failed and "disk full" in status.message
    assert events[-1].kind == "failed" and str(mnt / "f.h5") in events[-1].error
    _check_committed(mnt / "f.h5")
    assert np.isfinite(status.elapsed_s)
