"""Resume is for the same plan; more tiles only as an explicit, recorded append."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from thinkscope_gui.pairs.engine import AcquisitionEngine
from thinkscope_gui.pairs.plan import AcquisitionPlan

hardware = pytest.importorskip("hardware")
from hardware import open_microscope  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _acquire(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYMM_SIGNALS_BACKEND="psygnal",
               THINKSCOPE_HOME=str(tmp / "home"), QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "acquire", "--sensor", "128",
                           "--quiet", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def done_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("resume")
    out = tmp / "pairs.h5"
    r = _acquire(tmp, "--grid", "2x2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_resume_with_another_plan_is_refused_and_file_unchanged(done_file: Path,
                                                                 tmp_path: Path) -> None:
    before = _md5(done_file)
    r = _acquire(tmp_path, "--resume", "--grid", "3x3", "--center", "5200,100",
                 "--out", str(done_file))
    assert r.returncode == 2
    assert "grid" in r.stderr and "center_um" in r.stderr and "[2, 2]" in r.stderr
    assert "--out NEW.h5" in r.stderr and "--append" in r.stderr
    assert _md5(done_file) == before


def test_engine_resume_with_another_plan_fails_without_touching_the_file(done_file: Path,
                                                                         tmp_path: Path) -> None:
    copy = tmp_path / "copy.h5"
    copy.write_bytes(done_file.read_bytes())
    before = _md5(copy)
    scope = open_microscope("sim", sensor=(128, 128))
    try:
        plan = AcquisitionPlan(grid=(3, 3), output=str(copy))
        status = AcquisitionEngine(plan, scope, resume=True).run()
    finally:
        scope.close()
    assert status.failed and "another acquisition plan" in status.message
    assert "grid" in status.message
    assert _md5(copy) == before


def test_resume_without_options_continues_the_stored_plan(done_file: Path,
                                                          tmp_path: Path) -> None:
    r = _acquire(tmp_path, "--resume", "--out", str(done_file))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing left to do" in r.stdout and "pairs/min" not in r.stdout


def test_append_is_explicit_and_recorded(done_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "app.h5"
    out.write_bytes(done_file.read_bytes())
    r = _acquire(tmp_path, "--append", "--grid", "2x1", "--center", "5200,100",
                 "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    with h5py.File(out, "r") as f:
        n = int(f.attrs["committed_pairs"])
        tiles = sorted(int(t) for t in f["pairs/tile_index"][:n])
        plan = json.loads(f.attrs["plan_json"])
        history = json.loads(f.attrs["plan_history_json"])
    assert n == 6 and tiles == list(range(6))
    assert plan["grid"] == [2, 1] and plan["center_um"] == [5200.0, 100.0]
    assert [h["kind"] for h in history] == ["new", "append"]
    assert history[0]["plan"]["grid"] == [2, 2] and history[1]["tile_offset"] == 4
    r2 = _acquire(tmp_path, "--resume", "--out", str(out))
    assert r2.returncode == 0 and "nothing left to do" in r2.stdout, r2.stderr[-2000:]


def test_directory_as_out_is_a_clear_message(tmp_path: Path) -> None:
    r = _acquire(tmp_path, "--grid", "1x1", "--out", str(tmp_path))
    assert r.returncode == 2 and "is a directory" in r.stderr
    assert "Traceback" not in r.stderr
