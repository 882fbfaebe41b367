"""Loads enhancement models in a worker so switching models never stalls the live view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Signal

from .workers import FunctionWorker, start_worker


class ModelManager(QObject):
    """Holds the active Enhancer; checks it against the current objective."""

    loaded = Signal(object)      # Enhancer
    failed = Signal(str)
    mismatch = Signal(str)       # message naming the expected objective

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.enhancer: Any = None
        self.path: Path | None = None
        self.usable = False
        self._worker: FunctionWorker | None = None

    def load(self, path: str | Path | None = None) -> None:
        """Load ``path`` (None = the default model) in the background."""

        def job(token: Any, progress: Any) -> Any:
            from thinkscope_gui.learn import Enhancer

            return Enhancer.load(path)

        def done(enhancer: Any) -> None:
            self._worker = None
            self.enhancer = enhancer
            found = getattr(enhancer, "path", None) or path
            self.path = Path(found) if found is not None else None
            self.usable = True
            self.loaded.emit(enhancer)

        def fail(msg: str) -> None:
            self._worker = None
            self.failed.emit(msg)

        self._worker = start_worker(self, job, done, fail)

    def loading(self) -> bool:
        return self._worker is not None

    def check(self, profile: Any) -> bool:
        """Is the active model valid for this objective? Emits ``mismatch`` if not."""
        if self.enhancer is None:
            return False
        from thinkscope_gui.learn import ModelMismatchError

        try:
            self.enhancer.check_objective(profile)
        except ModelMismatchError as exc:
            self.usable = False
            self.mismatch.emit(str(exc))
            return False
        self.usable = True
        return True
