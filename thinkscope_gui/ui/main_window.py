"""The ThinkScope main window: live view, microscope controls, enhancement and panels."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import QByteArray, Qt, QTimer, Signal
from qtpy.QtGui import QAction, QKeySequence, QShortcut
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QSlider,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from thinkscope_gui.app_model import AppModel, Message, MessageLevel, ModelState
from thinkscope_gui.tiff import write_tiff

from .camera_view import CameraView, OverlayMode
from .errors import ErrorReporter
from .live_controller import LiveController
from .microscope_widgets import ExposureWidget, FocusWidget, ObjectiveWidget, StageWidget
from .model_manager import ModelManager
from .scope_signals import ScopeSignals
from .settings import app_settings, read_bool, read_float, thinkscope_home
from .widgets import dock_scroll, install_wheel_guard, unique_path
from .workers import EventBridge, start_worker

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Composes the camera view, controls and dock panels around one microscope."""

    #: imported in the background after the first frame (torch, scipy, skimage): the
    #: window and live view never wait for them, and no job imports them when it starts
    #: (an import in a worker holds the GIL for long stretches: the GUI stalls). torch
    #: imports _dynamo (~3 s) at the first optimiser call, i.e. when training starts.
    HEAVY_MODULES = ("thinkscope_gui.learn.train", "thinkscope_gui.learn.infer",
                     "thinkscope_gui.pairs.engine", "thinkscope_gui.learn.sim_source",
                     "PIL.Image", "torch._dynamo")
    #: panels whose engine needs a heavy module; with ``defer_heavy`` they are built later
    DEFERRED_PANELS = ("Training",)

    startupDone = Signal()
    #: once start-up is over (the heavy imports) and after each model load, move every
    #: object alive into the collector's permanent generation (gc.freeze): a full
    #: collection then no longer walks the ~400k objects of Qt, torch and numpy, which
    #: took 250 ms of the GUI thread (a stall) whenever one ran. run_gui and the live
    #: bench turn it on; off for windows made in tests (a test process keeps every
    #: window's objects)
    freeze_heap = False

    def __init__(self, scope: Any, *, modal_errors: bool = True, load_model: bool = True,
                 defer_heavy: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ready = False  # True once the background imports and deferred panels are done
        self._defer_heavy = defer_heavy
        self._docks: dict[str, QDockWidget] = {}
        self._factories: dict[str, Callable[[], QWidget]] = {}
        self._warmup: Any = None
        self.setObjectName("ThinkScopeMain")
        self.setWindowTitle(f"ThinkScope — {getattr(scope, 'source', 'microscope')}")
        self.scope = scope
        #: the Qt-free app state; its runner runs every job and holds the stand's lease
        self.app = AppModel(scope)
        self.reporter = ErrorReporter(self, modal=modal_errors)
        self.signals = ScopeSignals(scope, self)
        self.view = CameraView(self)
        self.setCentralWidget(self.view)
        install_wheel_guard(QApplication.instance())
        self.live = LiveController(scope, self.view, self)
        self.live.failed.connect(lambda m: self.report("Live view", m))
        self.models = ModelManager(self.app, self)  # loads what app.request_model asks for
        self.models.loaded.connect(self._model_loaded)
        self.models.failed.connect(self._model_failed)
        self.models.mismatch.connect(self._model_mismatch)
        self.app.events.model.connect(self._show_model_state)
        self.signals.objectiveChanged.connect(self._objective_changed)
        self.model_status = QLabel("model: none")
        self.hud = QLabel()
        self.readout = QLabel()
        self.view.readout.connect(self.readout.setText)
        self.statusBar().addWidget(self.readout, 1)
        self.statusBar().addPermanentWidget(self.model_status)
        self.statusBar().addPermanentWidget(self.hud)
        self._build_toolbar()
        self._build_controls()
        self._wire_app_model()
        self.panels: dict[str, QWidget] = {}
        self._build_panels()
        self._build_shortcuts()
        self._hud_timer = QTimer(self)
        self._hud_timer.timeout.connect(self._update_hud)
        self._hud_timer.start(500)
        self._restore_settings()
        self._startup_load = load_model
        self._load_pending = load_model and defer_heavy
        if load_model and not defer_heavy:
            self.models.load(self._settings_model_path())
        if not defer_heavy:
            QTimer.singleShot(0, self.start_background)

    # ---------------------------------------------------------------- start-up
    def start_background(self) -> None:
        """Import the heavy engines in a worker, then build the deferred panels and load
        the model. run_gui calls this after the first live frame; idempotent."""
        if self._warmup is not None or self.ready:
            return
        import importlib

        def job(token: Any, progress: Any) -> None:
            for name in self.HEAVY_MODULES:
                if token.cancelled:  # closed before the warm-up ended: exit need not wait
                    return
                try:
                    importlib.import_module(name)
                except Exception:  # noqa: BLE001 - the panel will show the reason
                    log.exception("background import of %s failed", name)

        def done(_result: Any = None) -> None:
            self._warmup = None
            for title in self.DEFERRED_PANELS:
                if title in self._factories and getattr(self.panels.get(title), "deferred",
                                                        False):
                    self._set_panel(title, self._make_panel(title))
            if self._load_pending:
                self._load_pending = False
                self.models.load(self._settings_model_path())
            self.ready = True
            self._freeze_heap()
            self.startupDone.emit()

        self._warmup = start_worker(self, job, done, lambda _m: done())

    # ------------------------------------------------------------------ errors
    def report(self, title: str, detail: str) -> None:
        """Show an error without killing anything (dialog or status bar)."""
        self.app.report(title, detail)

    def _show_message(self, msg: Message) -> None:
        """The app model's messages (from panels, jobs, the window): errors as dialogs,
        notices and hints in the status bar."""
        if msg.level == MessageLevel.ERROR:
            self.reporter.report(msg.title, msg.detail)
        elif msg.level == MessageLevel.NOTICE:
            self.reporter.notify(msg.title, msg.detail)
        else:
            self.statusBar().showMessage(msg.detail, msg.timeout_ms)

    # ----------------------------------------------------------------- toolbar
    def _build_toolbar(self) -> None:
        tb = QToolBar("Camera", self)
        tb.setObjectName("cameraToolbar")
        self.addToolBar(tb)
        self.act_snap = QAction("Snap", self)
        self.act_snap.triggered.connect(self.snap)
        self.act_live = QAction("Live", self, checkable=True)
        self.act_live.toggled.connect(self.set_live)
        self.act_save = QAction("Save TIFF…", self)
        self.act_save.setToolTip("Save the camera frame as TIFF with pixel size, objective, "
                                 "exposure and position (Ctrl+S)")
        self.act_save.triggered.connect(self._save_dialog)
        self.act_save_enh = QAction("Save enhanced…", self)
        self.act_save_enh.setToolTip("Enhance the whole frame with the active model and save "
                                     "it as TIFF (pixel size divided by the model's scale)")
        self.act_save_enh.triggered.connect(lambda: self._save_dialog(enhanced=True))
        self.act_auto = QAction("Auto contrast", self)
        self.act_auto.setToolTip("Set the display range once from the visible image")
        self.act_auto.triggered.connect(lambda: self.view.auto_contrast())
        self.act_auto_live = QAction("Auto", self, checkable=True)
        self.act_auto_live.setToolTip("Continuous auto-contrast (twice a second)")
        self.act_auto_live.toggled.connect(lambda on: setattr(self.view, "auto_levels", on))
        self.act_roi = QAction("Contrast ROI", self, checkable=True)
        self.act_roi.toggled.connect(self.view.contrast_roi.setVisible)
        for a in (self.act_snap, self.act_live, self.act_save, self.act_save_enh, self.act_auto,
                  self.act_auto_live, self.act_roi):
            tb.addAction(a)
        tb.addSeparator()
        self.act_zoom_in = QAction("Zoom +", self)
        self.act_zoom_in.setToolTip("Zoom in (the zoom is kept when the mode changes)")
        self.act_zoom_in.triggered.connect(lambda: self.view.zoom(1.5))
        self.act_zoom_out = QAction("Zoom −", self)
        self.act_zoom_out.setToolTip("Zoom out")
        self.act_zoom_out.triggered.connect(lambda: self.view.zoom(1 / 1.5))
        self.act_one = QAction("1:1", self)
        self.act_one.setToolTip("One camera pixel per screen pixel")
        self.act_one.triggered.connect(self.view.one_to_one)
        self.act_fit = QAction("Fit", self)
        self.act_fit.setToolTip("Whole frame in the window")
        self.act_fit.triggered.connect(self.view.fit)
        for a in (self.act_zoom_in, self.act_zoom_out, self.act_one, self.act_fit):
            tb.addAction(a)
        tb.addSeparator()
        self.act_enhance = QAction("Enhance", self, checkable=True)
        self.act_enhance.toggled.connect(self.set_enhancing)
        tb.addAction(self.act_enhance)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems([m.value for m in OverlayMode if m != OverlayMode.OFF])
        self.mode_combo.currentTextChanged.connect(self._mode_changed)
        tb.addWidget(self.mode_combo)
        self.blend = QSlider(Qt.Orientation.Horizontal)
        self.blend.setRange(0, 100)
        self.blend.setValue(50)
        self.blend.setFixedWidth(80)
        self.blend.setToolTip("blend: enhanced opacity")
        self.blend.valueChanged.connect(lambda v: self.app.set_overlay(blend=v / 100))
        tb.addWidget(self.blend)
        self.lens_size = QSpinBox(minimum=16, maximum=1024, singleStep=16, value=128,
                                  suffix=" px lens")
        self.lens_size.valueChanged.connect(self._lens_size_changed)
        tb.addWidget(self.lens_size)
        self.lens_zoom = QSpinBox(minimum=1, maximum=8, value=2, prefix="×", suffix=" lens")
        self.lens_zoom.setToolTip("Lens magnification: the lens enhances the centre 1/m of "
                                  "its area and shows it m times larger")
        self.lens_zoom.valueChanged.connect(self._lens_zoom_changed)
        tb.addWidget(self.lens_zoom)

    def _lens_zoom_changed(self, v: int) -> None:
        self.view.lens_magnification = float(v)
        self.view.set_lens_center(*self.view.lens_center)

    def _lens_size_changed(self, v: int) -> None:
        self.app.set_overlay(lens_px=int(v))

    def _build_controls(self) -> None:
        box = QWidget()
        lay = QVBoxLayout(box)
        err = self.report
        self.objective_widget = ObjectiveWidget(self.scope, self.signals, err)
        self.stage_widget = StageWidget(self.scope, self.signals, err)
        self.focus_widget = FocusWidget(self.scope, self.signals, err)
        self.focus_widget.start_job = self.start_job
        self.exposure_widget = ExposureWidget(self.scope, self.signals, err)
        for title, w in (("Objective", self.objective_widget), ("Stage", self.stage_widget),
                         ("Focus", self.focus_widget), ("Camera", self.exposure_widget)):
            lay.addWidget(QLabel(f"<b>{title}</b>"))
            lay.addWidget(w)
        lay.addStretch(1)
        dock = self._add_dock("Microscope", box, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.resizeDocks([dock], [box.minimumSizeHint().width() + 16],
                         Qt.Orientation.Horizontal)

    def _wire_app_model(self) -> None:
        """The runner pauses live view for a job that drives the stand and restores it
        after; manual control is disabled while such a job holds the lease. Runner
        callbacks come from the job's thread: bridges bring them to the GUI thread."""
        self._restore_live = EventBridge(self)
        self._restore_live.event.connect(lambda was: was and self.set_live(True))
        self._busy = EventBridge(self)
        self._busy.event.connect(self._stand_busy_changed)
        # messages may come from any thread; said on the GUI thread (at once when from it)
        self._messages = EventBridge(self)
        self._messages.event.connect(self._show_message)
        self.app.events.message.connect(self._messages)
        self.app.events.frame.connect(self.view.set_frame)
        self.startupDone.connect(self.app.set_engines_ready)
        self.app.watch_manual_moves(lambda: self.stage_widget.mover.busy()
                                    or self.focus_widget.mover.busy())

        def pause_live() -> bool:  # called by runner.start, on the GUI thread
            was = self.act_live.isChecked()
            if was:
                self.set_live(False)
            return was

        self.app.live_hooks = (pause_live, self._restore_live)
        self.app.events.stand_busy.connect(self._busy)
        self.app.events.live.connect(self._show_live)
        self.app.events.overlay.connect(self._overlay_changed)

    def manual_controls(self) -> list[Any]:
        """The controls that move or image the stand by hand."""
        return [self.objective_widget, self.stage_widget, self.focus_widget,
                self.exposure_widget, self.act_snap, self.act_live]

    def _stand_busy_changed(self, holder: str | None) -> None:
        for w in self.manual_controls():
            if w is self.focus_widget:
                w.set_manual_enabled(holder is None)
            else:
                w.setEnabled(holder is None)
        if holder is not None:
            self.statusBar().showMessage(f"manual control is off while the microscope is "
                                         f"busy with {holder}", 5000)

    def start_job(self, job: Any, title: str) -> bool:
        """Run a job through the app's runner; a refused one is reported, not raised.
        Manual control goes off at once: the app says ``stand_busy`` as the lease is
        taken, on this thread."""
        return self.app.try_start_job(job, title)

    def _add_dock(self, title: str, widget: QWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title}")
        # a dock scrolls rather than forcing the window taller than a 768-pixel screen
        dock.setWidget(dock_scroll(widget, title))
        self.addDockWidget(area, dock)
        return dock

    def _build_panels(self) -> None:
        """Dock panels, tabbed on the right; heavy ones may be built after start-up."""

        # panels get the app model and the scope's Qt signals, never the window: they act
        # on the app (report, start a job, request a model) and the window observes it
        def acq() -> QWidget:
            from .panels.acquisition_panel import AcquisitionPanel
            return AcquisitionPanel(self.app, self.signals)

        def train() -> QWidget:
            from .panels.training_panel import TrainingPanel
            return TrainingPanel(self.app)

        def models() -> QWidget:
            from .panels.models_panel import ModelsPanel
            return ModelsPanel(self.app, self.signals)

        def objectives() -> QWidget:
            from .panels.objectives_panel import ObjectivesPanel
            return ObjectivesPanel(self.app, self.signals)

        self._factories = {"Acquisition": acq, "Training": train, "Models": models,
                           "Objectives": objectives}
        first: QDockWidget | None = None
        for title in self._factories:
            if self._defer_heavy and title in self.DEFERRED_PANELS:
                widget = QLabel(f"{title}: loading the engine in the background…")
                widget.deferred = True  # type: ignore[attr-defined]
            else:
                widget = self._make_panel(title)
            self.panels[title] = widget
            dock = self._add_dock(title, widget)
            self._docks[title] = dock
            if first is None:
                first = dock
            else:
                self.tabifyDockWidget(first, dock)
        if first is not None:
            first.raise_()
            # the camera view gets most of the window; panels can be widened by the user
            self.resizeDocks([first], [420], Qt.Orientation.Horizontal)

    def _make_panel(self, title: str) -> QWidget:
        """Build one panel; one that cannot be built shows why instead of breaking."""
        try:
            return self._factories[title]()
        except Exception as exc:  # noqa: BLE001 - a missing engine must not kill the GUI
            log.exception("panel %s unavailable", title)
            widget = QLabel(f"{title} unavailable:\n{type(exc).__name__}: {exc}")
            widget.setWordWrap(True)
            return widget

    def _set_panel(self, title: str, widget: QWidget) -> None:
        """Put a (re)built panel into its dock."""
        self.panels[title] = widget
        self._docks[title].setWidget(dock_scroll(widget, title))

    def _build_shortcuts(self) -> None:
        """Stage and focus keys act only while the image has focus (click it), as in
        Micro-Manager: arrows in a spin box, table or selector never move the stand."""
        in_view = Qt.ShortcutContext.WidgetWithChildrenShortcut
        moves = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0),
                 Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}
        for key, (dx, dy) in moves.items():
            s = QShortcut(QKeySequence(key), self.view)
            s.setContext(in_view)
            s.activated.connect(lambda dx=dx, dy=dy: self.stage_widget.move(dx, dy, fov=False))
            s = QShortcut(QKeySequence(Qt.KeyboardModifier.ShiftModifier | key), self.view)
            s.setContext(in_view)
            s.activated.connect(lambda dx=dx, dy=dy: self.stage_widget.move(dx, dy, fov=True))
        for key, sign in ((Qt.Key.Key_PageUp, +1), (Qt.Key.Key_PageDown, -1)):
            s = QShortcut(QKeySequence(key), self.view)
            s.setContext(in_view)
            s.activated.connect(lambda sign=sign: self.focus_widget.nudge(sign))
        s = QShortcut(QKeySequence("Space"), self.view)
        s.setContext(in_view)
        s.activated.connect(self.snap)
        QShortcut(QKeySequence("Ctrl+S"), self, lambda: self._save_dialog())

    # ---------------------------------------------------------------- camera
    def snap(self) -> None:
        """One frame (stops live first so the snap is not mixed with the stream)."""
        if (holder := self.app.stand_holder) is not None:
            self.report("Snap", f"the microscope is busy with {holder}")
            return
        if self.act_live.isChecked():
            self.act_live.setChecked(False)
        try:
            image = self.scope.snap()
        except Exception as exc:  # noqa: BLE001
            self.report("Snap failed", str(exc))
            return
        self.live.show_image(image, self.scope.pixel_size_um())

    def set_live(self, on: bool) -> None:
        """Live on/off through the app model (refused while a job drives the stand); the
        Live action follows the model's ``live`` event."""
        try:
            self.app.set_live(on)
        except Exception as exc:  # noqa: BLE001 - StandBusy or a camera error, said plainly
            self.report("Live view", str(exc))
        self._show_live(self.app.live)

    def _show_live(self, on: bool) -> None:
        if self.act_live.isChecked() != on:
            self.act_live.blockSignals(True)
            self.act_live.setChecked(on)
            self.act_live.blockSignals(False)

    def frame_info(self, kind: str = "raw") -> dict[str, Any]:
        """What a saved image records besides its pixels (ImageJ Info text)."""
        info: dict[str, Any] = {"kind": kind, "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
                                "source": getattr(self.scope, "source", "")}
        with contextlib.suppress(Exception):
            label = self.scope.objective()
            p = self.scope.profile(label)
            info.update(objective=label, magnification=p.magnification, na=p.na,
                        immersion=p.immersion, camera_pixel_size_um=p.pixel_size_um)
        with contextlib.suppress(Exception):
            x, y = self.scope.xy()
            info.update(exposure_ms=self.scope.exposure(), stage_x_um=x, stage_y_um=y,
                        z_um=self.scope.z())
        if kind == "enhanced" and self.models.enhancer is not None:
            info.update(model=self.models.path.name if self.models.path else "default",
                        model_path=str(self.models.path or ""),
                        model_scale=self.models.enhancer.scale)
        return info

    def default_save_path(self, kind: str = "raw") -> Path:
        """$THINKSCOPE_HOME/images/<time>_<objective>_<kind>.tif, never an existing file."""
        label = "frame"
        with contextlib.suppress(Exception):
            label = str(self.scope.objective())
        name = f"{time.strftime('%Y%m%d_%H%M%S')}_{label}_{kind}.tif"
        return unique_path(thinkscope_home() / "images" / name)

    def save_frame(self, path: str | Path) -> Path | None:
        """Save the displayed camera frame as TIFF with pixel size and full metadata."""
        if self.view.frame is None:
            self.report("Save", "no frame to save yet")
            return None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            out = write_tiff(path, self.view.frame, self.view.pixel_size_um,
                            self.frame_info("raw"))
        except Exception as exc:  # noqa: BLE001
            self.report("Save failed", str(exc))
            return None
        self.statusBar().showMessage(f"saved {out}", 10000)
        return out

    def save_enhanced(self, path: str | Path,
                      on_done: Callable[[Path], None] | None = None) -> bool:
        """Enhance the whole current frame in the background and save it (with the model
        in the metadata); False when there is no frame or no usable model."""
        frame, enhancer = self.view.frame, self.models.enhancer
        if frame is None or enhancer is None or not self.models.usable:
            self.report("Save enhanced", "needs a frame and a usable model for this objective")
            return False
        pixel = self.view.pixel_size_um / float(enhancer.scale)
        info = self.frame_info("enhanced")
        info["pixel_size_um"] = pixel

        def job(token: Any, progress: Any) -> Path:
            out = enhancer.enhance(frame)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return write_tiff(path, out, pixel, info)

        def done(out: Path) -> None:
            self.statusBar().showMessage(f"saved {out}", 10000)
            if on_done is not None:
                on_done(out)

        start_worker(self, job, done, lambda m: self.report("Save enhanced failed", m))
        return True

    def _save_dialog(self, enhanced: bool = False) -> None:
        kind = "enhanced" if enhanced else "raw"
        default = self.default_save_path(kind)
        default.parent.mkdir(parents=True, exist_ok=True)
        path, _ = QFileDialog.getSaveFileName(self, f"Save {kind} frame", str(default),
                                              "TIFF (*.tif *.tiff)")
        if path:
            if enhanced:
                self.save_enhanced(path)
            else:
                self.save_frame(path)

    # ----------------------------------------------------------- enhancement
    def set_enhancing(self, on: bool) -> None:
        """Turn live enhancement on/off through the app model (its overlay is the one copy
        of "enhancing"); refused when no usable model is active."""
        self.models.publish()
        try:
            self.app.set_overlay(mode=self.mode_combo.currentText() if on else OverlayMode.OFF)
        except ValueError:
            why = "model still loading" if self.models.loading() else "no usable model"
            self.report("Enhancement", f"cannot enhance: {why}")
        self._overlay_changed(self.app.overlay)

    def _overlay_changed(self, ov: Any) -> None:
        """Everything that shows the overlay follows the app model's."""
        on = ov.enhancing
        if self.act_enhance.isChecked() != on:
            self.act_enhance.blockSignals(True)
            self.act_enhance.setChecked(on)
            self.act_enhance.blockSignals(False)
        mode_changed = self.view.mode != ov.mode
        self.view.set_blend_alpha(ov.blend)
        if self.view.lens_size != ov.lens_px:
            self.view.lens_size = ov.lens_px
            self.view.set_lens_center(*self.view.lens_center)
        self.view.set_mode(ov.mode)
        if self.live.enhancing != on:
            self.live.set_enhancing(on)
        elif on and mode_changed:
            self.live.reset_meters()

    def set_overlay_mode(self, mode: OverlayMode | str) -> None:
        self.mode_combo.setCurrentText(OverlayMode(mode).value)

    def _mode_changed(self, text: str) -> None:
        if self.app.overlay.enhancing:
            self.app.set_overlay(mode=text)

    def activate_model(self, path: str | Path | None) -> None:
        """Load a model in the background (through the app model, as a panel does); the
        view keeps running meanwhile."""
        self.app.request_model(path)

    def _show_model_state(self, state: ModelState) -> None:
        """The status bar's model line: the app model's summary (the one the Models panel
        shows), kept until it changes (a disabled model stays explained, not a notice that
        fades after seconds)."""
        self.model_status.setText(f"model: {state.summary}")
        self.model_status.setToolTip(self.models.reason or state.summary)
        self.model_status.setStyleSheet("" if state.usable or state.path is None
                                        else "color: #c60;")

    def _model_loaded(self, enhancer: Any) -> None:
        self._startup_load = False
        self.live.set_enhancer(enhancer)
        self._objective_changed(self.scope.objective())
        self._freeze_heap()

    def _freeze_heap(self) -> None:
        """gc.freeze() where ``freeze_heap`` asks for it (see there). No collection first:
        that is the very stall this avoids; the little garbage frozen with the live
        objects stays, once."""
        if self.freeze_heap:
            gc.freeze()

    def _model_failed(self, msg: str) -> None:
        if self._startup_load:
            self.app.notify("Model", msg)  # no dialog on start-up
        else:
            self.report("Model", msg)
        self._startup_load = False

    def _model_mismatch(self, msg: str) -> None:
        self.set_enhancing(False)
        self.app.notify("Model disabled", msg)

    def _objective_changed(self, label: str) -> None:
        try:
            profile = self.scope.profile(label)
        except Exception:  # noqa: BLE001
            return
        if self.models.enhancer is not None:
            self.models.check(profile)  # the status line follows models.changed

    def _update_hud(self) -> None:
        text = self.live.heads_up()
        self.hud.setText(text)
        self.view.set_hud(text)

    def fit_to(self, width: int, height: int, *, show_all_docks: bool = False) -> None:
        """Size the window to ``width`` x ``height`` (a screen size); optionally open every
        dock that the user closed, so a screenshot shows the whole application."""
        if show_all_docks:
            for dock in self.findChildren(QDockWidget):
                dock.setFloating(False)
                dock.show()
        self.resize(width, height)

    # -------------------------------------------------------------- settings
    def _settings_model_path(self) -> str | None:
        value = app_settings().value("model/path", "")
        return str(value) if value and Path(str(value)).exists() else None

    def _restore_settings(self) -> None:
        s = app_settings()
        geo, state = s.value("window/geometry"), s.value("window/state")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        else:
            self.resize(1400, 900)
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self.stage_widget.step.setValue(read_float(s, "stage/step_um", 50.0))
        self.stage_widget.by_fov.setChecked(read_bool(s, "stage/by_fov", False))
        self.focus_widget.step.setValue(read_float(s, "focus/step_um", 0.5))
        self.lens_size.setValue(int(read_float(s, "view/lens_px", 128)))
        self.blend.setValue(int(read_float(s, "view/blend", 50)))
        self.lens_zoom.setValue(int(read_float(s, "view/lens_zoom", 2)))
        self.act_auto_live.setChecked(read_bool(s, "view/auto_contrast", False))
        mode = str(s.value("view/mode", OverlayMode.LENS.value))
        if mode in [m.value for m in OverlayMode]:
            self.mode_combo.setCurrentText(mode)

    def save_settings(self) -> None:
        s = app_settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("stage/step_um", self.stage_widget.step.value())
        s.setValue("stage/by_fov", self.stage_widget.by_fov.isChecked())
        s.setValue("focus/step_um", self.focus_widget.step.value())
        s.setValue("view/lens_px", self.lens_size.value())
        s.setValue("view/blend", self.blend.value())
        s.setValue("view/lens_zoom", self.lens_zoom.value())
        s.setValue("view/auto_contrast", self.act_auto_live.isChecked())
        s.setValue("view/mode", self.mode_combo.currentText())
        if self.models.path is not None:
            s.setValue("model/path", str(self.models.path))
        s.sync()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop timers, workers and engines; leaves the microscope open for its owner."""
        self._hud_timer.stop()
        if self._warmup is not None:
            # it stops at the next module; the one being imported cannot be interrupted
            self._warmup.cancel()
            self._warmup.wait(60000)
        for panel in self.panels.values():
            stop = getattr(panel, "shutdown", None)
            if callable(stop):
                stop()
        self.live.shutdown()
        with contextlib.suppress(Exception):
            self.scope.stop_live()
        self.signals.disconnect_scope()
