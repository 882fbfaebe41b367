"""The way to the first live frame: the real start-up (run_gui: splash, microscope,
window, live) in a fresh interpreter, stopped at its first frame.

The first frame must not wait for the heavy engines: torch (training, enhancement),
skimage and scipy's signal/stats (registration, calibration) and h5py (the pair store)
are imported in the background after the first frame. A module-level import of one of
them anywhere on the way (a panel importing its engine at the top) fails this test.
The time to the first frame is a speed figure: `main.py --screenshot` prints it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: top-level packages (or submodules) that must not be loaded when the first frame shows
HEAVY = ("torch", "skimage", "scipy.signal", "scipy.stats", "scipy.optimize", "h5py",
         "safetensors")

_DRIVER = """
import json, sys
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from thinkscope_gui.ui import app as gui

found = {}

def poll():
    for w in QApplication.topLevelWidgets():
        mods = getattr(w, "modules_at_first_frame", None)
        if mods is not None:
            found["modules"] = sorted(mods)
            found["marks"] = w.startup_marks
            found["splash_closed"] = not any(
                isinstance(x, gui.Splash) and x.isVisible()
                for x in QApplication.topLevelWidgets())
            found["frame"] = None if w.view.frame is None else list(w.view.frame.shape)
            w.close()
            QApplication.instance().quit()
            return
    QTimer.singleShot(20, poll)

QTimer.singleShot(0, poll)
rc = gui.run_gui("sim", size=(1366, 768))
print("RESULT " + json.dumps(found))
"""


def test_first_frame_imports_no_heavy_engine(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYMM_SIGNALS_BACKEND="psygnal",
               THINKSCOPE_HOME=str(tmp_path / "home"),
               THINKSCOPE_SETTINGS_DIR=str(tmp_path / "settings"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _DRIVER], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    found = json.loads(lines[-1][len("RESULT "):])
    assert found, "no first frame was shown"
    mods = set(found["modules"])
    assert "thinkscope_gui.ui.main_window" in mods and "hardware.sim.render" in mods
    loaded = sorted(h for h in HEAVY if h in mods)
    assert loaded == [], f"imported before the first frame: {loaded}"
    assert found["splash_closed"]
    assert found["frame"] is not None and len(found["frame"]) >= 2  # a real image shown
    steps = [name for name, _t in found["marks"]]
    assert steps[:3] == ["python + imports", "QApplication", "splash shown"]
    assert steps[-1] == "first frame"
    times = [t for _n, t in found["marks"]]
    assert times == sorted(times)
