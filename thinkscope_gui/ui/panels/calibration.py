"""Qt side of the objective calibration: the headless procedure's job
(:mod:`thinkscope_gui.pairs.calibration`) run by the app's runner, and a result box that
stays until dismissed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ..workers import JobWatcher

if TYPE_CHECKING:  # the engine imports scipy and skimage: not on the way to the window
    from hardware.microscope import Microscope
    from thinkscope_gui.pairs.calibration import CalibrationResult

__all__ = ["CalibrationResultBox", "start_calibration"]


def start_calibration(owner: QWidget, scope: Microscope, *,
                      start_job: Callable[[Any, str], bool],
                      on_done: Callable[[CalibrationResult], None],
                      on_failed: Callable[[str], None],
                      on_progress: Callable[[Any], None],
                      on_cancelled: Callable[[], None],
                      objectives: Sequence[str] | None = None) -> JobWatcher | None:
    """Run the calibration as a job of the app's runner (oil->dry already confirmed by
    the user): it holds the stand's lease, so no acquisition or manual move interferes.
    None when the stand is busy (``start_job`` has said why)."""
    from thinkscope_gui.pairs.calibration import calibration_job

    job = calibration_job(scope, confirm_oil_to_dry=True, objectives=objectives)
    if not start_job(job, "Calibration"):
        return None
    watcher = JobWatcher(job, owner)
    watcher.succeeded.connect(on_done)
    watcher.failed.connect(on_failed)
    watcher.progress.connect(on_progress)
    watcher.cancelled.connect(on_cancelled)
    return watcher


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
