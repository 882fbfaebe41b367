"""The window fits a 1366x768 laptop screen and is comfortable at 1920x1080.

Every dock tab is raised in turn; each visible push button, tool button and the status
line must be drawn inside the window (not scrolled away, not clipped off). The test also
grabs the real window at both sizes; with THINKSCOPE_WRITE_SCREENSHOTS=1 it writes them as
the README's screenshots (docs/screenshots/). By default they go to the test's temp folder,
so a test run never changes tracked files (a rebuild's provenance needs a clean tree).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from qtpy.QtCore import QRect
from qtpy.QtWidgets import QAbstractButton, QDockWidget, QPushButton, QScrollArea, QToolButton

from thinkscope_gui.ui.model_form import ModelForm

pytest_plugins = ["tests.test_ui_support"]

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
WRITE_SHOTS_ENV = "THINKSCOPE_WRITE_SCREENSHOTS"
SIZES = ((1366, 768), (1920, 1080))


def _visible_rect(widget: Any, window: Any) -> QRect:
    """The part of ``widget`` actually painted, in window coordinates."""
    region = widget.visibleRegion()
    if region.isEmpty():
        return QRect()
    r = region.boundingRect()
    top_left = widget.mapTo(window, r.topLeft())
    return QRect(top_left, r.size())


def _in_shown_area(b: Any) -> bool:
    """False for buttons of a dock that is a hidden tab, or fields of a plan/config form
    (those scroll inside their own form area by design)."""
    w = b.parentWidget()
    while w is not None:
        if isinstance(w, ModelForm):
            return False
        if isinstance(w, QDockWidget):
            return not w.visibleRegion().isEmpty()
        w = w.parentWidget()
    return True


def _offscreen_buttons(window: Any) -> list[str]:
    """Names of visible action buttons not wholly drawn inside the window."""
    screen = QRect(0, 0, window.width(), window.height())
    bad = []
    for b in window.findChildren(QAbstractButton):
        if not isinstance(b, (QPushButton, QToolButton)) or b.objectName().startswith("qt_"):
            continue
        if not b.isVisible() or not _in_shown_area(b):
            continue
        seen = _visible_rect(b, window)
        whole = QRect(b.mapTo(window, b.rect().topLeft()), b.size())
        if seen.isEmpty() or seen.size() != b.size() or not screen.contains(whole):
            bad.append(b.text() or b.toolTip() or b.objectName() or type(b).__name__)
    return bad


def _settle(qtbot: Any, window: Any) -> None:
    qtbot.wait(50)
    window.repaint()


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_window_fits_and_buttons_visible(qtbot: Any, window: Any, size: tuple[int, int],
                                       tmp_path: Path) -> None:
    w, h = size
    hint = window.minimumSizeHint()
    assert hint.width() <= w and hint.height() <= h, hint
    window.fit_to(w, h, show_all_docks=True)
    qtbot.waitUntil(lambda: window.width() == w and window.height() == h, timeout=5000)
    qtbot.waitUntil(lambda: window.view.frame is not None, timeout=10000)
    window.view.auto_contrast()
    docks = [d for d in window.findChildren(QDockWidget) if d.isVisible() or d.isFloating()
             or window.tabifiedDockWidgets(d)]
    titles = sorted({d.windowTitle() for d in window.findChildren(QDockWidget)})
    assert {"Microscope", "Acquisition", "Training", "Models", "Objectives"} <= set(titles)
    for dock in docks:
        dock.raise_()
        _settle(qtbot, window)
        assert not _offscreen_buttons(window), (dock.windowTitle(), _offscreen_buttons(window))
        # a dock's scroll area must not hide the panel's run controls: at this size the
        # panel fits without a vertical scroll bar
        scroll = dock.widget()
        if isinstance(scroll, QScrollArea) and dock.windowTitle() in ("Acquisition",
                                                                      "Training"):
            assert not scroll.verticalScrollBar().isVisible(), dock.windowTitle()
    bar = window.statusBar()
    assert bar.isVisible()
    seen = _visible_rect(bar, window)
    assert seen.size() == bar.size() and QRect(0, 0, w, h).contains(seen)
    assert _visible_rect(window.hud, window).size() == window.hud.size()
    window.panels["Acquisition"].window().activateWindow()
    for dock in window.findChildren(QDockWidget):
        if dock.windowTitle() == "Acquisition":
            dock.raise_()
    _settle(qtbot, window)
    shots = SHOTS if os.environ.get(WRITE_SHOTS_ENV) == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    image = window.grab()
    assert image.width() == w and image.height() == h
    assert image.save(str(shots / f"window_{w}x{h}.png"))



def test_size_option_parses_and_refuses_bad_sizes(capsys: Any) -> None:
    import main

    assert main.build_parser().parse_args(["--size", "1366x768"]).size == (1366, 768)
    for bad in ("1366", "axb", "100x100"):
        with pytest.raises(SystemExit):
            main.build_parser().parse_args(["--size", bad])
        assert "size" in capsys.readouterr().err
