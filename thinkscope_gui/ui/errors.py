"""Turn uncaught exceptions into dialogs or status messages instead of a dead window."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from qtpy.QtCore import QObject, QThread, Signal
from qtpy.QtWidgets import QApplication, QMessageBox, QWidget

log = logging.getLogger(__name__)


class ErrorReporter(QObject):
    """Receives errors from any thread and shows them on the GUI thread."""

    error = Signal(str, str)  # title, detail
    notices = Signal(str, str)

    def __init__(self, parent: QWidget | None = None, *, modal: bool = True) -> None:
        super().__init__(parent)
        self._parent = parent
        self.modal = modal  # tests and --screenshot turn dialogs off
        self.messages: list[str] = []
        self.error.connect(self._show)
        self.notices.connect(self._show_notice)

    def report(self, title: str, detail: str) -> None:
        """Thread-safe: emit; the slot runs on the GUI thread."""
        self.error.emit(title, detail)

    def notify(self, title: str, detail: str) -> None:
        """A non-blocking notice (status bar + log), for expected events such as a model
        being disabled after an objective change during an unattended run."""
        self.notices.emit(title, detail)

    def _show_notice(self, title: str, detail: str) -> None:
        self.messages.append(f"{title}: {detail}")
        log.info("%s: %s", title, detail)
        window = self._parent
        if window is not None and hasattr(window, "statusBar"):
            window.statusBar().showMessage(f"{title}: {detail}", 15000)

    def _show(self, title: str, detail: str) -> None:
        self.messages.append(f"{title}: {detail}")
        log.error("%s: %s", title, detail)
        window = self._parent
        if window is not None and hasattr(window, "statusBar"):
            window.statusBar().showMessage(f"{title}: {detail.splitlines()[0] if detail else ''}",
                                           10000)
        if self.modal and QThread.currentThread() is QApplication.instance().thread():
            QMessageBox.warning(window, title, detail)


def install_excepthook(reporter: ErrorReporter) -> None:
    """Route uncaught exceptions (including those in Qt slots) to the reporter."""

    def hook(etype: type[BaseException], value: BaseException,
             tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            sys.__excepthook__(etype, value, tb)
            return
        detail = "".join(traceback.format_exception_only(etype, value)).strip()
        log.debug("".join(traceback.format_exception(etype, value, tb)))
        reporter.report("Unexpected error", detail)

    sys.excepthook = hook
