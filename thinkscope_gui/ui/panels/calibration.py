"""Qt side of the objective calibration: a worker around the headless procedure
(:mod:`thinkscope_gui.pairs.calibration`) and a result box that stays until dismissed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from thinkscope_gui.pairs.calibration import (
    CalibrationCancelled,
    CalibrationResult,
    calibrate,
)

from ..workers import Cancelled, FunctionWorker, start_worker

__all__ = ["CalibrationResultBox", "start_calibration"]


def start_calibration(owner: QWidget, scope: Any, *,
                      on_done: Callable[[CalibrationResult], None],
                      on_failed: Callable[[str], None],
                      on_progress: Callable[[Any], None],
                      on_cancelled: Callable[[], None],
                      objectives: Sequence[str] | None = None) -> FunctionWorker:
    """Run the calibration off the GUI thread (oil->dry already confirmed by the user)."""

    def job(token: Any, progress: Any) -> CalibrationResult:
        try:
            return calibrate(scope, confirm_oil_to_dry=True, objectives=objectives,
                             cancelled=lambda: token.cancelled, progress=progress)
        except CalibrationCancelled as exc:
            raise Cancelled() from exc

    return start_worker(owner, job, on_done, on_failed, on_progress, on_cancelled)


class CalibrationResultBox(QFrame):
    """What the last calibration measured; stays visible until the user dismisses it."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.clicked.connect(self._dismiss)
        lay = QHBoxLayout(self)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.dismiss_button)
        self.hide()

    def show_result(self, text: str) -> None:
        self.text.setText(text)
        self.show()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
