"""Only thinkscope_gui/ui/ may import Qt; the ui's numeric helpers stay Qt-free too."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT = re.compile(r"^\s*(from|import)\s+(PySide6|PyQt5|PyQt6|qtpy|pyqtgraph|pytestqt)\b", re.M)
#: modules under ui/ that hold pure logic (numpy, files) and must not need a display
QT_FREE_UI = ["rate.py", "panels/model_catalog.py"]


def _qt_importers(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths if QT.search(p.read_text(encoding="utf-8"))]


def test_only_ui_imports_qt() -> None:
    headless = [p for d in ("hardware", "thinkscope_gui") for p in (ROOT / d).rglob("*.py")
                if "ui" not in p.relative_to(ROOT).parts]
    assert headless, "no sources found"
    assert _qt_importers(headless) == []


def test_ui_numeric_helpers_are_qt_free() -> None:
    ui = ROOT / "thinkscope_gui" / "ui"
    assert _qt_importers([ui / name for name in QT_FREE_UI]) == []
