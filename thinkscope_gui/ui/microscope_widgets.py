"""Microscope-wired control widgets: objective, stage, focus (with autofocus), exposure.

Each takes the microscope facade as an argument (pymmcore-widgets style) and reports
errors through a callback instead of raising into the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .scope_signals import ScopeSignals
from .workers import FunctionWorker, start_worker

if TYPE_CHECKING:
    from hardware.microscope import Microscope

ErrorFn = Callable[[str, str], None]


def _print_error(title: str, detail: str) -> None:
    print(f"{title}: {detail}")


class DeviceMover(QObject):
    """Runs stage or focus moves one at a time off the GUI thread (as pymmcore-widgets
    does), so a slow device never freezes the window. Relative moves queued while one
    runs are merged into a single move; an absolute target replaces what is queued."""

    moved = Signal()

    def __init__(self, apply: Callable[[str, tuple[float, ...]], None], on_error: ErrorFn,
                 title: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._apply = apply
        self._on_error = on_error
        self._title = title
        self._queue: list[tuple[str, tuple[float, ...]]] = []
        self._worker: FunctionWorker | None = None

    def relative(self, *delta: float) -> None:
        if self._queue and self._queue[-1][0] == "by":
            prev = self._queue.pop()[1]
            delta = tuple(a + b for a, b in zip(prev, delta, strict=True))
        self._queue.append(("by", delta))
        self._next()

    def absolute(self, *target: float) -> None:
        self._queue = [("to", target)]
        self._next()

    def busy(self) -> bool:
        """A move is running or queued."""
        return self._worker is not None or bool(self._queue)

    def _next(self) -> None:
        if self._worker is not None or not self._queue:
            return
        kind, values = self._queue.pop(0)
        apply = self._apply

        def job(token: Any, progress: Any) -> None:
            apply(kind, values)

        self._worker = start_worker(self, job, self._done, self._failed)

    def _done(self, _result: Any) -> None:
        self._worker = None
        self.moved.emit()
        self._next()

    def _failed(self, msg: str) -> None:
        self._worker = None
        self._queue.clear()  # do not run moves planned from a position never reached
        self.moved.emit()
        self._on_error(self._title, msg.split(": ", 1)[-1])


class ObjectiveWidget(QWidget):
    """Turret selector; going from oil back to dry asks the operator first."""

    objectiveSet = Signal(str)

    def __init__(self, scope: Microscope, signals: ScopeSignals, on_error: ErrorFn = _print_error,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scope = scope
        self._on_error = on_error
        self.combo = QComboBox()
        self.combo.addItems(scope.objectives())
        self.combo.setCurrentText(scope.objective())
        self.info = QLabel()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.combo)
        lay.addWidget(self.info)
        self.combo.activated.connect(lambda _i: self.request(self.combo.currentText()))
        signals.objectiveChanged.connect(self._sync)
        self._worker: FunctionWorker | None = None
        #: asks the operator; tests replace it
        self.confirm: Callable[[str], bool] = self._ask
        self._sync(scope.objective())

    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(self, "Oil to dry", text)
        return answer == QMessageBox.StandardButton.Yes

    def _sync(self, label: str) -> None:
        self.combo.blockSignals(True)
        self.combo.setCurrentText(label)
        self.combo.blockSignals(False)
        try:
            p = self.scope.profile(label)
            self.info.setText(f"{p.magnification:g}x / {p.na:g} {p.immersion}, "
                              f"{p.pixel_size_um:g} µm/px")
        except Exception:  # noqa: BLE001 - unknown profile: show the label only
            self.info.setText(label)

    def request(self, label: str) -> bool:
        """Change objective following the safety rules; returns False if refused/declined."""
        current = self.scope.objective()
        if label == current:
            return True
        confirm = False
        if (self.scope.profile(current).immersion == "oil"
                and self.scope.profile(label).immersion != "oil"):
            if not self.confirm(f"Going from {current} (oil) to {label} (dry).\n"
                                "Clean the oil from the slide first. Continue?"):
                self._sync(current)
                return False
            confirm = True
        self.combo.setEnabled(False)

        def job(token: Any, progress: Any) -> str:
            self.scope.set_objective(label, confirm_oil_to_dry=confirm)
            return label

        def done(result: str) -> None:
            self.combo.setEnabled(True)
            self._sync(self.scope.objective())
            self.objectiveSet.emit(result)

        def failed(msg: str) -> None:
            self.combo.setEnabled(True)
            self._sync(self.scope.objective())
            self._on_error("Objective change failed", msg)

        self._worker = start_worker(self, job, done, failed)
        return True


class StageWidget(QWidget):
    """Arrows move by a step or a field of view; go-to; live position read-out."""

    def __init__(self, scope: Microscope, signals: ScopeSignals, on_error: ErrorFn = _print_error,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scope = scope
        self._on_error = on_error
        self.step = QDoubleSpinBox(suffix=" µm", decimals=1, minimum=0.1, maximum=10000,
                                   value=50.0)
        self.by_fov = QCheckBox("by field of view")
        self.pos = QLabel()
        grid = QGridLayout()
        for text, (r, c), d in (("↑", (0, 1), (0, -1)), ("←", (1, 0), (-1, 0)),
                                ("→", (1, 2), (1, 0)), ("↓", (2, 1), (0, 1))):
            b = QPushButton(text)
            b.setFixedWidth(36)
            b.clicked.connect(lambda _=False, d=d: self.move(*d))
            grid.addWidget(b, r, c)
        self.goto_x = QDoubleSpinBox(decimals=1, minimum=-1e6, maximum=1e6, prefix="x ")
        self.goto_y = QDoubleSpinBox(decimals=1, minimum=-1e6, maximum=1e6, prefix="y ")
        go = QPushButton("Go to")
        go.clicked.connect(lambda: self.go_to(self.goto_x.value(), self.goto_y.value()))
        goto = QHBoxLayout()
        for w in (self.goto_x, self.goto_y, go):
            goto.addWidget(w)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.step)
        row.addWidget(self.by_fov)
        lay.addLayout(row)
        lay.addLayout(grid)
        lay.addLayout(goto)
        lay.addWidget(self.pos)
        signals.xyChanged.connect(self._show)
        self.mover = DeviceMover(self._apply, on_error, "Stage move refused", self)
        self.mover.moved.connect(lambda: self._show(*self.scope.xy()))
        self._show(*scope.xy())

    def _apply(self, kind: str, values: tuple[float, ...]) -> None:
        """Runs in the mover's thread: the device may take its time."""
        if kind == "by":
            self.scope.move_xy_by(*values)
        else:
            self.scope.set_xy(*values)

    def _show(self, x: float, y: float) -> None:
        self.pos.setText(f"stage x {x:.1f} µm, y {y:.1f} µm")

    def field_of_view_um(self) -> tuple[float, float]:
        h, w = self.scope.image_shape()
        p = self.scope.pixel_size_um()
        return (w * p, h * p)

    def move(self, dx_sign: int, dy_sign: int, fov: bool | None = None) -> None:
        """Move one step (or one field of view) in the given direction; +x is to the right."""
        use_fov = self.by_fov.isChecked() if fov is None else fov
        if use_fov:
            fx, fy = self.field_of_view_um()
            dx, dy = dx_sign * fx, dy_sign * fy
        else:
            dx, dy = dx_sign * self.step.value(), dy_sign * self.step.value()
        self.mover.relative(dx, dy)  # off the GUI thread; refusals become messages

    def go_to(self, x: float, y: float) -> None:
        self.mover.absolute(x, y)


class FocusWidget(QWidget):
    """Z read-out, fine steps, and a cancellable one-shot autofocus in a worker."""

    autofocusDone = Signal(object)

    def __init__(self, scope: Microscope, signals: ScopeSignals, on_error: ErrorFn = _print_error,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scope = scope
        self._on_error = on_error
        self.z = QDoubleSpinBox(suffix=" µm", decimals=2, minimum=-1e5, maximum=1e5,
                                keyboardTracking=False)
        lo, hi = scope.z_limits()
        self.z.setRange(lo, hi)
        self.step = QDoubleSpinBox(suffix=" µm", decimals=2, minimum=0.01, maximum=100,
                                   value=0.5)
        up, down = QPushButton("Z +"), QPushButton("Z −")
        self._movers = (self.z, self.step, up, down)
        up.clicked.connect(lambda: self.nudge(+1))
        down.clicked.connect(lambda: self.nudge(-1))
        self.af_button = QPushButton("Autofocus")
        self.af_button.clicked.connect(self.toggle_autofocus)
        self.af_status = QLabel()
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Z"), 0, 0)
        lay.addWidget(self.z, 0, 1)
        lay.addWidget(self.step, 0, 2)
        lay.addWidget(down, 1, 1)
        lay.addWidget(up, 1, 2)
        lay.addWidget(self.af_button, 2, 1)
        lay.addWidget(self.af_status, 2, 2)
        self.z.valueChanged.connect(self._set_z)
        signals.zChanged.connect(self._show)
        self._worker: Any = None
        #: set by the window: runs autofocus as a job of the app's runner (it takes the
        #: stand's lease); None runs it in a plain worker (a widget on its own)
        self.start_job: Callable[[Any, str], bool] | None = None
        self.mover = DeviceMover(self._apply, self._move_failed, "Focus move refused", self)
        self.mover.moved.connect(lambda: self._show(self.scope.z()))
        self._show(scope.z())

    def _apply(self, kind: str, values: tuple[float, ...]) -> None:
        """Runs in the mover's thread."""
        (v,) = values
        self.scope.set_z(self.scope.z() + v if kind == "by" else v)

    def _move_failed(self, title: str, detail: str) -> None:
        self._show(self.scope.z())
        self._on_error(title, detail)

    def _show(self, z: float) -> None:
        self.z.blockSignals(True)
        self.z.setValue(z)
        self.z.blockSignals(False)

    def _set_z(self, z: float) -> None:
        self.mover.absolute(z)

    def nudge(self, sign: int) -> None:
        self.mover.relative(sign * self.step.value())

    def toggle_autofocus(self) -> None:
        """Start autofocus, or cancel the one running."""
        if self._worker is not None:
            self._worker.cancel()
            self.af_status.setText("cancelling…")
            return
        from thinkscope_gui.pairs.autofocus import autofocus
        from thinkscope_gui.pairs.plan import AutofocusSettings

        scope = self.scope
        if self.start_job is not None:
            from thinkscope_gui.pairs.autofocus import autofocus_job

            from .workers import JobWatcher

            af_job = autofocus_job(scope, AutofocusSettings())
            if not self.start_job(af_job, "Autofocus"):
                return
            watcher = JobWatcher(af_job, self)
            watcher.succeeded.connect(self._af_done)
            watcher.failed.connect(self._af_failed)
            watcher.cancelled.connect(self._af_cancelled)
            self._worker = watcher
            self.af_button.setEnabled(True)  # the Cancel button while its job holds the stand
            self.af_button.setText("Cancel AF")
            self.af_status.setText("focusing…")
            return

        def job(token: Any, progress: Any) -> Any:
            return autofocus(scope, AutofocusSettings(),
                             on_progress=lambda n, z, score: progress((n, z, score)),
                             cancel=lambda: token.cancelled)

        self.af_button.setText("Cancel AF")
        self.af_status.setText("focusing…")
        self._worker = start_worker(self, job, self._af_done, self._af_failed,
                                    on_cancel=self._af_cancelled)

    def _finish(self, text: str) -> None:
        self._worker = None
        self.af_button.setText("Autofocus")
        self.af_status.setText(text)
        self._show(self.scope.z())

    def _af_done(self, result: Any) -> None:
        self._finish(f"z {result.z:.2f} µm")
        self.autofocusDone.emit(result)

    def _af_failed(self, msg: str) -> None:
        self._finish("failed")
        self._on_error("Autofocus failed", msg)

    def _af_cancelled(self) -> None:
        self._finish("cancelled")

    def is_running(self) -> bool:
        return self._worker is not None

    def set_manual_enabled(self, on: bool) -> None:
        """Manual focus on/off while a job holds the stand; the autofocus button stays
        usable while its own autofocus runs (it is the Cancel button then)."""
        for w in self._movers:
            w.setEnabled(on)
        self.af_button.setEnabled(on or self._worker is not None)


class ExposureWidget(QWidget):
    """Camera exposure in ms."""

    def __init__(self, scope: Microscope, signals: ScopeSignals, on_error: ErrorFn = _print_error,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scope = scope
        self._on_error = on_error
        self.spin = QDoubleSpinBox(suffix=" ms", decimals=2, minimum=0.01, maximum=10000,
                                   keyboardTracking=False)
        self.spin.setValue(scope.exposure())
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Exposure"))
        lay.addWidget(self.spin)
        self.spin.valueChanged.connect(self._set)
        signals.exposureChanged.connect(self._show)

    def _show(self, ms: float) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(ms)
        self.spin.blockSignals(False)

    def _set(self, ms: float) -> None:
        try:
            self.scope.set_exposure(ms)
        except Exception as exc:  # noqa: BLE001
            self._on_error("Exposure refused", str(exc))
