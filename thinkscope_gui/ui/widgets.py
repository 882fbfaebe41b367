"""Small widgets and filters shared by the panels: steady status lines, wheel-safe fields,
dock scroll areas, a unique-file-name rule and an event-loop stall watchdog.

They exist so the window behaves the same everywhere: a status text never moves the
buttons around it, the mouse wheel never edits a field the user did not click into, and a
dock scrolls instead of pushing the window past a small screen.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QWidget,
)

log = logging.getLogger(__name__)


class StatusLabel(QLabel):
    """A word-wrapped label of a fixed number of lines (full text in the tooltip).

    A growing label would push the buttons next to it up and down as text wraps, and a
    height-for-width label makes a dock's scroll area demand its preferred height.
    """

    def __init__(self, text: str = "", lines: int = 2, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + 4)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        super().setText(text)
        self.setToolTip(text)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return False


class WheelGuard(QObject):
    """Application-wide: a wheel over a spin box or combo box that has no keyboard focus
    scrolls the surrounding panel instead of changing the value (as in Micro-Manager)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind == QEvent.Type.Polish and isinstance(obj, (QAbstractSpinBox, QComboBox)):
            # WheelFocus would hand focus to the field under the wheel before we decide
            obj.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif (kind == QEvent.Type.Wheel and isinstance(obj, (QAbstractSpinBox, QComboBox))
              and not obj.hasFocus()):
            event.ignore()  # propagates to the parent (the scroll area scrolls)
            return True
        return False


_guard: WheelGuard | None = None


def install_wheel_guard(app: QApplication) -> WheelGuard:
    """Install the wheel guard once per application; returns it."""
    global _guard
    if _guard is None:
        _guard = WheelGuard(app)
        app.installEventFilter(_guard)
    # widgets polished before the guard existed. allWidgets() hands back raw pointers: a
    # garbage collection while their wrappers are made could delete a dead window's
    # widgets under them (a segfault seen in the test suite), so none runs meanwhile
    enabled = gc.isenabled()
    gc.disable()
    try:
        for w in app.allWidgets():
            if isinstance(w, (QAbstractSpinBox, QComboBox)):
                w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # wheel no longer grabs focus
    finally:
        if enabled:
            gc.enable()
    return _guard


def dock_scroll(widget: QWidget, name: str) -> QScrollArea:
    """Wrap a dock's content so it scrolls rather than forcing the window taller."""
    scroll = QScrollArea()
    scroll.setObjectName(f"scroll_{name}")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(widget)
    # scroll up and down only: a dock is never narrower than its content
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    bar = scroll.verticalScrollBar().sizeHint().width()
    scroll.setMinimumWidth(widget.minimumSizeHint().width() + bar)
    return scroll


def unique_path(path: str | Path) -> Path:
    """``path`` if nothing is there yet, else the first free ``stem_2``, ``stem_3``, …

    Models and pair stores are never replaced by accident: the next run writes next to
    the earlier one (a model's checkpoint counts as taken too).
    """
    path = Path(path)
    suffix = path.suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    candidate, n = path, 1
    while candidate.exists() or Path(str(candidate) + ".ckpt.safetensors").exists():
        n += 1
        candidate = path.with_name(f"{stem}_{n}{suffix}")
    return candidate
