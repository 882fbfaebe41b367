"""The application's state in one Qt-free, evented model (like napari's ``ViewerModel``).

Why: the GUI kept several copies of one state ("enhancing" lived in an action, the live
controller and the camera view) and panels reached into the window and into each other.
Here each piece of state has one home and one psygnal event; panels observe the model and
act on it, and the model can be driven and tested headless.

It holds the microscope, the active model (and whether it is usable, with the reason),
live on/off, the overlay (mode, lens, blend), the pair stores, and the current job. Manual
control of the stand goes through it and is refused with :class:`StandBusy` while a job
holds the stand's lease; the job runner, not each panel, pauses live view for such a job
and restores it afterwards.

Panels act on it rather than on the window: :meth:`AppModel.report` and
:meth:`AppModel.notify` say something (``events.message``; the window shows a dialog or the
status bar), :meth:`AppModel.try_start_job` runs a job or reports why not,
:meth:`AppModel.request_model` asks for a model (the window's model manager loads it and
publishes the result with :meth:`AppModel.set_model`), and :meth:`AppModel.show_frame`
hands an image a job took to whatever shows images.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import Signal, SignalGroup

from thinkscope_gui.jobs import Job, JobRunner, JobStatus, StandBusy, lease_for

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np

    from hardware.microscope import Microscope

__all__ = ["AppEvents", "AppModel", "Message", "MessageLevel", "ModelState", "Overlay",
           "OverlayMode", "StandBusy"]


class OverlayMode(str, Enum):
    """How the enhanced image is shown against the camera frame."""

    OFF = "off"
    SIDE_BY_SIDE = "side by side"
    WIPE = "split wipe"
    BLEND = "blend"
    LENS = "enhancement lens"
    CONSISTENCY = "consistency map"


@dataclass(frozen=True)
class Overlay:
    """The overlay settings: mode, lens size (px) and blend opacity (0..1)."""

    mode: OverlayMode = OverlayMode.OFF
    lens_px: int = 128
    blend: float = 0.5

    @property
    def enhancing(self) -> bool:
        """True when an enhanced image is shown (any mode but off)."""
        return self.mode != OverlayMode.OFF


@dataclass(frozen=True)
class ModelState:
    """The active enhancement model and whether it can enhance this stand's images."""

    path: str | None = None
    usable: bool = False
    reason: str = "no model loaded"
    """Why it is not usable (empty when it is)."""
    summary: str = "none"
    """One line for people: 'none', 'loading…', 'name (x2.5)' or 'name: disabled, <why>';
    the status bar and the Models panel both show this one."""


class MessageLevel(str, Enum):
    """How loudly a :class:`Message` is shown."""

    ERROR = "error"      # failed or refused: a dialog (status bar when dialogs are off)
    NOTICE = "notice"    # expected but worth knowing: status bar and log, no dialog
    STATUS = "status"    # a hint: status bar only


@dataclass(frozen=True)
class Message:
    """Something to tell the operator (``events.message``)."""

    title: str
    detail: str
    level: MessageLevel = MessageLevel.ERROR
    timeout_ms: int = 10000
    """How long a status-bar line stays (STATUS only)."""


class AppEvents(SignalGroup):
    """Every change of the app model; emitted on the thread that made it."""

    microscope = Signal(object)
    model = Signal(object)          # ModelState
    live = Signal(bool)
    overlay = Signal(object)        # Overlay
    stores = Signal(tuple)          # tuple[str, ...]
    job = Signal(object)            # JobStatus of the current (or last) job
    stand_busy = Signal(object)     # holder name (str) or None when the stand is free
    catalogue = Signal()            # model files or the profiles judging them changed
    message = Signal(object)        # Message to show the operator
    model_requested = Signal(object)  # path (str) of a model to load, or None: the default
    frame = Signal(object, float)   # (image, pixel size in µm) a job took, to be shown
    engines_ready = Signal()        # the heavy engines (torch, ...) are imported


class AppModel:
    """The one place the application's state lives (no Qt)."""

    def __init__(self, microscope: Microscope | None = None) -> None:
        self.events = AppEvents()
        self._scope = microscope
        self._model = ModelState()
        self._overlay = Overlay()
        self._stores: tuple[str, ...] = ()
        self._lock = threading.RLock()
        self._engines_ready = False
        self._move_probes: list[Callable[[], bool]] = []
        #: (pause() -> was_live, restore(was_live)) for a stand job; a GUI replaces them
        #: to stop and restart live view on its own thread
        self.live_hooks: tuple[Callable[[], bool], Callable[[bool], None]] = (
            self._pause_live, self._restore_live)
        self.runner = JobRunner(live_hooks=(self._stand_taken, self._stand_freed))
        self.runner.started.connect(self._job_started)
        self.runner.finished.connect(self._job_finished)

    # --- microscope -------------------------------------------------------------------
    @property
    def microscope(self) -> Microscope | None:
        """The stand (a :class:`hardware.Microscope`), or None before one is opened."""
        return self._scope

    @microscope.setter
    def microscope(self, scope: Microscope) -> None:
        if scope is self._scope:
            return
        if self.stand_holder is not None:
            raise StandBusy(f"cannot change the microscope: it is busy with "
                            f"{self.stand_holder}")
        self.set_live(False)
        self._scope = scope
        self.events.microscope.emit(scope)

    @property
    def stand(self) -> Microscope:
        """The microscope, for code that cannot work without one (panels): StandBusy
        before one is open."""
        if self._scope is None:
            raise StandBusy("no microscope is open")
        return self._scope

    @property
    def stand_holder(self) -> str | None:
        """Name of the job driving the stand, or None (manual control allowed)."""
        return lease_for(self._scope).holder if self._scope is not None else None

    @property
    def manual_control_enabled(self) -> bool:
        """Whether objective, stage, focus, exposure, snap and live may be used now."""
        return self._scope is not None and self.stand_holder is None

    def _manual(self, action: str) -> Microscope:
        if self._scope is None:
            raise StandBusy(f"cannot {action}: no microscope is open")
        lease_for(self._scope).check_free(action)
        return self._scope

    # manual control: each refused while a job holds the stand
    def set_objective(self, label: str, **kwargs: Any) -> None:
        """Change the objective (manual control)."""
        self._manual(f"change the objective to {label}").set_objective(label, **kwargs)

    def set_xy(self, x: float, y: float) -> None:
        """Move the stage (manual control)."""
        self._manual("move the stage").set_xy(x, y)

    def move_xy_by(self, dx: float, dy: float) -> None:
        """Move the stage relative (manual control)."""
        self._manual("move the stage").move_xy_by(dx, dy)

    def set_z(self, z: float) -> None:
        """Focus (manual control)."""
        self._manual("focus").set_z(z)

    def set_exposure(self, ms: float) -> None:
        """Set the exposure (manual control)."""
        self._manual("change the exposure").set_exposure(ms)

    def snap(self) -> np.ndarray:
        """Take one image (manual control)."""
        return self._manual("snap").snap()

    # --- live -------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """Whether live view runs (the camera's own state: one copy)."""
        return bool(self._scope is not None and self._scope.is_live())

    def set_live(self, on: bool) -> None:
        """Start or stop live view (refused to start while a job drives the stand)."""
        on = bool(on)
        if on == self.live:
            return
        if on:
            self._manual("start live view").start_live()
        elif self._scope is not None:
            self._scope.stop_live()
        self.events.live.emit(self.live)

    def _pause_live(self) -> bool:
        was = self.live
        if was:
            self.set_live(False)
        return was

    def _restore_live(self, was_live: bool) -> None:
        if was_live and not self.live and self._scope is not None:
            self.set_live(True)

    def _stand_taken(self) -> bool:
        """The runner took the stand's lease (on the starting thread, before the job's
        thread runs): say so at once, so manual control is off before start returns."""
        try:
            job = self.runner.job  # set before the runner calls this hook
            self.events.stand_busy.emit(job.name if job is not None else self.stand_holder)
        except Exception:  # noqa: BLE001 - a broken listener must not keep live running
            _log.exception("a stand_busy listener failed")
        return self.live_hooks[0]()

    def _stand_freed(self, was_live: bool) -> None:
        self.live_hooks[1](was_live)

    def watch_manual_moves(self, busy: Callable[[], bool]) -> None:
        """Register a probe that says whether a manual stage or focus move is under way."""
        self._move_probes.append(busy)

    def manual_move_running(self) -> bool:
        """True while a manual move (registered with :meth:`watch_manual_moves`) runs."""
        return any(probe() for probe in self._move_probes)

    # --- model and overlay ------------------------------------------------------------
    @property
    def model(self) -> ModelState:
        """The active model, whether it is usable, and why not."""
        return self._model

    def set_model(self, path: str | None, usable: bool, reason: str = "",
                  summary: str = "") -> None:
        """Record the active model; an unusable model switches the overlay off.

        ``events.model`` fires only when the state changed."""
        new = ModelState(path, bool(usable), "" if usable else (reason or "unusable"),
                         summary or (Path(path).name if path else "none"))
        if new != self._model:
            self._model = new
            self.events.model.emit(new)
        if not usable and self._overlay.enhancing:
            self.set_overlay(mode=OverlayMode.OFF)

    def request_model(self, path: str | os.PathLike[str] | None) -> None:
        """Ask for ``path`` (None: the default model) to become the active model; whoever
        loads models (the window's model manager) answers with :meth:`set_model`. Call it
        from the thread that owns the loader (the GUI thread in the application)."""
        self.events.model_requested.emit(None if path is None else str(path))

    @property
    def overlay(self) -> Overlay:
        """Overlay mode, lens size and blend."""
        return self._overlay

    def set_overlay(self, *, mode: OverlayMode | str | None = None, lens_px: int | None = None,
                    blend: float | None = None) -> None:
        """Change the overlay; enhancing needs a usable model (ValueError says why not)."""
        changes: dict[str, Any] = {}
        if mode is not None:
            m = OverlayMode(mode)
            if m != OverlayMode.OFF and not self._model.usable:
                raise ValueError(f"cannot enhance: {self._model.reason}")
            changes["mode"] = m
        if lens_px is not None:
            changes["lens_px"] = max(16, int(lens_px))
        if blend is not None:
            changes["blend"] = min(1.0, max(0.0, float(blend)))
        new = replace(self._overlay, **changes)
        if new != self._overlay:
            self._overlay = new
            self.events.overlay.emit(new)

    def catalogue_changed(self) -> None:
        """Say that model files were written or profiles changed (lists re-scan)."""
        self.events.catalogue.emit()

    @property
    def engines_ready(self) -> bool:
        """Whether the heavy engines (torch, ...) are imported: lists that need them wait."""
        return self._engines_ready

    def set_engines_ready(self) -> None:
        """Say that the background imports are done (once)."""
        if not self._engines_ready:
            self._engines_ready = True
            self.events.engines_ready.emit()

    # --- messages and frames ----------------------------------------------------------
    def report(self, title: str, detail: str) -> None:
        """Tell the operator something failed or was refused (the window: a dialog)."""
        self.events.message.emit(Message(title, detail, MessageLevel.ERROR))

    def notify(self, title: str, detail: str) -> None:
        """Tell the operator something expected but worth knowing (no dialog)."""
        self.events.message.emit(Message(title, detail, MessageLevel.NOTICE))

    def show_status(self, text: str, timeout_ms: int = 10000) -> None:
        """A passing hint (the window's status bar)."""
        self.events.message.emit(Message("", text, MessageLevel.STATUS, int(timeout_ms)))

    def show_frame(self, image: np.ndarray, pixel_size_um: float) -> None:
        """An image a job took, for the live view to show while live itself is off."""
        self.events.frame.emit(image, float(pixel_size_um))

    # --- stores -----------------------------------------------------------------------
    @property
    def stores(self) -> tuple[str, ...]:
        """Pair stores known to this session (acquired or opened), in order."""
        return self._stores

    def add_store(self, path: str) -> None:
        """Add a pair store (e.g. when an acquisition ends); duplicates are ignored."""
        if path and path not in self._stores:
            self._stores = (*self._stores, str(path))
            self.events.stores.emit(self._stores)

    def remove_store(self, path: str) -> None:
        """Forget a pair store."""
        if path in self._stores:
            self._stores = tuple(p for p in self._stores if p != path)
            self.events.stores.emit(self._stores)

    # --- jobs -------------------------------------------------------------------------
    @property
    def job(self) -> JobStatus | None:
        """The status of the job driving the stand, or None when there is none."""
        return self.runner.status() if self.runner.busy else None

    def start_job(self, job: Job) -> JobRunner:
        """Run a job (acquisition, training, calibration, ...); returns its runner.

        Jobs that drive the stand share :attr:`runner` (one at a time, StandBusy otherwise);
        each other job (training, enhancing) gets a runner of its own and runs alongside."""
        if job.needs_stand:
            self.runner.start(job)
            return self.runner
        runner = JobRunner()
        runner.started.connect(self._job_started)
        runner.finished.connect(self._job_finished)
        runner.start(job)
        return runner

    def try_start_job(self, job: Job, title: str) -> bool:
        """:meth:`start_job`, for panels: a refused job (StandBusy) is reported under
        ``title`` and False returned, instead of raising."""
        try:
            self.start_job(job)
        except StandBusy as exc:
            self.report(title, str(exc))
            return False
        return True

    def cancel_job(self) -> None:
        """Stop the job driving the stand at its next step; it ends "cancelled"."""
        self.runner.cancel()

    def _job_started(self, status: JobStatus) -> None:
        self.events.job.emit(status)  # stand_busy was said when the lease was taken

    def _job_finished(self, status: JobStatus) -> None:
        self.events.job.emit(status)
        if status.needs_stand:
            self.events.stand_busy.emit(None)

    def on(self, name: str, callback: Callable[..., Any]) -> None:
        """Connect ``callback`` to the event ``name`` (a panel's one entry point)."""
        getattr(self.events, name).connect(callback)
