"""Loads enhancement models in a worker so switching models never stalls the live view."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal

from .workers import FunctionWorker, start_worker

if TYPE_CHECKING:
    from thinkscope_gui.app_model import AppModel


class ModelManager(QObject):
    """Holds the active Enhancer; checks it against the current objective.

    It is the one truth about the model. Given the app model, it loads what
    ``AppModel.request_model`` asks for and publishes every change as the app's
    :class:`~thinkscope_gui.app_model.ModelState` (with :meth:`summary`): the status bar and
    the Models panel both show that one state, so they can never disagree.
    """

    loaded = Signal(object)      # Enhancer
    failed = Signal(str)
    mismatch = Signal(str)       # message naming the expected objective
    changed = Signal()           # enhancer, usable or reason changed

    def __init__(self, app: AppModel | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.enhancer: Any = None
        self.path: Path | None = None
        self.usable = False
        #: why the active model cannot be used now ('' when usable or none is loaded)
        self.reason = ""
        self._worker: FunctionWorker | None = None
        self.app = app
        if app is not None:
            app.events.model_requested.connect(self.load)
            self.changed.connect(self.publish)

    def publish(self) -> None:
        """Put this manager's state into the app model (an unusable model ends the overlay
        there, and so everywhere)."""
        if self.app is None:
            return
        usable = self.enhancer is not None and bool(self.usable)
        reason = ("model still loading" if self.loading() else
                  self.reason or "no usable model")
        self.app.set_model(str(self.path) if self.path else None, usable, reason,
                           self.summary())

    @property
    def name(self) -> str:
        if self.enhancer is None:
            return ""
        return self.path.name if self.path is not None else "default"

    def summary(self) -> str:
        """One line: 'none', 'loading…', 'name (x2.5)' or 'name: disabled, <reason>'."""
        if self.loading():
            return "loading…" if self.enhancer is None else f"{self.name} (loading another…)"
        if self.enhancer is None:
            return "none"
        if not self.usable:
            return f"{self.name}: disabled, {self.reason}"
        return f"{self.name} (x{self.enhancer.scale:g})"

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
            self.usable, self.reason = True, ""
            self.loaded.emit(enhancer)
            self.changed.emit()

        def fail(msg: str) -> None:
            self._worker = None
            self.failed.emit(msg)
            self.changed.emit()

        self._worker = start_worker(self, job, done, fail)
        self.changed.emit()

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
            self.reason = f"trained for other objectives: {exc}"
            self.changed.emit()
            self.mismatch.emit(str(exc))
            return False
        self.usable, self.reason = True, ""
        self.changed.emit()
        return True
