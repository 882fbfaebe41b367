"""Every failure also lands in the rotating log file $THINKSCOPE_HOME/logs/thinkscope.log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _main(home: Path, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), THINKSCOPE_HOME=str(home),
               PYMM_SIGNALS_BACKEND="psygnal", QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_failure_goes_to_stderr_and_the_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = _main(home, "acquire", "--sensor", "128", "--quiet", "--out", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.count("is a directory") == 1  # once, not duplicated by the log handler
    log = (home / "logs" / "thinkscope.log").read_text()
    assert "acquire started" in log and "is a directory" in log and "ERROR" in log


def test_enhance_bad_image_is_logged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "x.png").write_text("not an image")
    r = _main(home, "enhance", str(tmp_path / "x.png"), str(tmp_path / "o.png"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "x.png" in (home / "logs" / "thinkscope.log").read_text()


def test_gui_connection_failure_goes_to_stderr_and_the_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = _main(home, "--pycromanager", "1", "--screenshot", str(tmp_path / "s.png"))
    assert r.returncode == 1
    msg = "cannot open microscope 'pycromanager:1'"
    assert msg in r.stderr and msg in (home / "logs" / "thinkscope.log").read_text()


def test_log_rotates(tmp_path: Path, monkeypatch) -> None:
    import logging

    from thinkscope_gui import logs

    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(logs, "_installed", {})
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        path = logs.setup_logging("test", stderr=False)
        assert path == tmp_path / "logs" / "thinkscope.log"
        for i in range(200):
            logging.getLogger("thinkscope_gui.test").warning("line %d of the rotation test", i)
        assert (tmp_path / "logs" / "thinkscope.log.1").is_file()
        assert path.stat().st_size <= 2200
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
                h.close()
