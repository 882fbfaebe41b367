"""Every failure also lands in the rotating log file $THINKSCOPE_HOME/logs/thinkscope.log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), THINKSCOPE_HOME=str(home),
                PYMM_SIGNALS_BACKEND="psygnal", QT_QPA_PLATFORM="offscreen")


def _main(home: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], cwd=ROOT, env=_env(home),
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


def test_a_native_crash_of_the_gui_leaves_every_threads_python_stack(tmp_path: Path) -> None:
    """A crash in Qt or a device adapter kills the process without a traceback; a real
    SIGABRT sent to the running GUI must leave the Python stacks of its threads on stderr
    (faulthandler), so a crash report says where it happened."""
    import signal
    import time

    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py")], cwd=ROOT,
                            env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    log = home / "logs" / "thinkscope.log"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if log.is_file() and "first live frame" in log.read_text():
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in err
    assert err.count("Thread 0x") >= 2 and "File " in err  # the stacks of several threads
