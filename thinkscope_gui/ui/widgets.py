"""Small widgets and filters shared by the panels: steady status lines, wheel-safe fields,
dock scroll areas, a unique-file-name rule and an event-loop stall watchdog.

They exist so the window behaves the same everywhere: a status text never moves the
buttons around it, the mouse wheel never edits a field the user did not click into, and a
dock scrolls instead of pushing the window past a small screen.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
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


class StallWatchdog(QObject):
    """Measures how long the GUI event loop goes without running a short timer.

    A 10 ms timer that fires 250 ms late means the GUI thread was busy (or blocked) for
    about 240 ms: the window could not repaint or take clicks during that time. ``worst_s``
    and ``stalls`` (the ``label`` set by the caller, length) tell where it happened.

    ``worst_busy_s`` is the most CPU time the GUI thread itself used within one gap: the
    part of a stall caused by work done on the GUI thread, as opposed to waiting for the
    CPU or for a lock (which an overloaded machine adds to ``worst_s``).
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = 10,
                 report_over_s: float = 0.05) -> None:
        super().__init__(parent)
        self.interval_s = interval_ms / 1000.0
        self.report_over_s = report_over_s
        self.worst_s = 0.0
        self.worst_busy_s = 0.0
        self.stalls: list[tuple[str, float]] = []  # (label at the time, seconds)
        self.label = ""
        self._last: float | None = None
        self._last_cpu = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if self._last is not None:
            self.worst_busy_s = max(self.worst_busy_s, cpu - self._last_cpu)
            stall = now - self._last - self.interval_s
            if stall > self.worst_s:
                self.worst_s = stall
            if stall > self.report_over_s:
                self.stalls.append((self.label, stall))
                log.info("GUI stall %.0f ms (%s)", stall * 1000, self.label)
        self._last, self._last_cpu = now, cpu
