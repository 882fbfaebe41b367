"""Pair acquisition panel: edit/save/load a plan, run it, watch the stage map fill in.

The AcquisitionEngine runs as a job of the app model's runner (thinkscope_gui/jobs.py),
which holds the stand's lease and pauses live view; the window, observing the app model,
disables manual control. The engine's typed events cross to the GUI thread through an
EventBridge; each frame it snaps goes to ``AppModel.show_frame``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..model_form import ModelForm
from ..settings import app_settings, thinkscope_home
from ..widgets import StatusLabel, unique_path
from ..workers import EventBridge
from .stage_map import StageMap

if TYPE_CHECKING:
    import numpy as np

    from hardware.microscope import Microscope
    from thinkscope_gui.app_model import AppModel
    from thinkscope_gui.pairs.plan import AcquisitionPlan

    from ..scope_signals import ScopeSignals

#: the plan editor in physical units: spin boxes for X/Y (µm), columns/rows, exposures
PLAN_HINTS: dict[str, dict[str, Any]] = {
    "center_um": {"title": "grid centre", "labels": ("X", "Y"), "suffix": " µm",
                  "decimals": 1, "minimum": -1e6, "maximum": 1e6},
    "grid": {"title": "tiles", "labels": ("columns", "rows"), "minimum": 1, "maximum": 200},
    "overlap": {"decimals": 2, "minimum": 0.0, "maximum": 0.89},
    "lr_exposure_ms": {"suffix": " ms", "decimals": 2, "minimum": 0.01, "maximum": 10000},
    "hr_exposure_ms": {"suffix": " ms", "decimals": 2, "minimum": 0.01, "maximum": 10000},
    "autofocus.search_range_um": {"suffix": " µm", "decimals": 2, "minimum": 0.01},
    "autofocus.coarse_step_um": {"suffix": " µm", "decimals": 2, "minimum": 0.01},
    "autofocus.fine_step_um": {"suffix": " µm", "decimals": 3, "minimum": 0.001},
    "autofocus.seeded_range_um": {"suffix": " µm", "decimals": 2, "minimum": 0.01},
    "gates.max_offset_um": {"suffix": " µm", "decimals": 1},
}
#: rough per-frame overhead (readout, move, settle) for the estimate, in seconds
FRAME_OVERHEAD_S = 0.03
#: a turret swap with oil, in seconds (two per run)
SWAP_S = 2.0


def estimate_run(plan: AcquisitionPlan, scope: Microscope) -> tuple[int, float, float]:
    """(tiles, seconds, bytes) a plan will take: a rough guide shown before Start.

    Time: autofocus evaluations plus one snap per tile and objective, each costing the
    exposure plus readout and settling; two turret swaps. Size: one LR and one HR frame
    per tile, uncompressed (gzip makes the file smaller).
    """
    h, w = scope.image_shape()
    hr = scope.profile(plan.hr_objective).pixel_size_um
    tiles = len(plan.tiles((w * hr, h * hr)))
    af = plan.autofocus
    evals = 0
    if af.enabled:
        evals = int(af.search_range_um / af.coarse_step_um) + 1
        evals += int(2 * af.coarse_step_um / af.fine_step_um) + 1
    per_tile = sum((evals + 1) * (ms / 1000.0 + FRAME_OVERHEAD_S)
                   for ms in (plan.lr_exposure_ms, plan.hr_exposure_ms))
    seconds = tiles * per_tile + 2 * SWAP_S
    nbytes = tiles * 2 * h * w * 3
    return tiles, seconds, float(nbytes)


def _human(seconds: float, nbytes: float) -> str:
    t = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
    size = f"{nbytes / 1e6:.0f} MB" if nbytes < 1e9 else f"{nbytes / 1e9:.1f} GB"
    return f"≈ {t}, ≤ {size}"


class WatchedScope:
    """The microscope as the engine sees it, except that every snapped frame is also
    handed to ``on_frame(image, pixel_size_um)`` (thread-safe: an EventBridge)."""

    def __init__(self, scope: Microscope,
                 on_frame: Callable[[tuple[np.ndarray, float]], None]) -> None:
        self._scope = scope
        self._on_frame = on_frame

    @property
    def stand(self) -> Microscope:
        """The microscope itself: its lease is the one the run holds."""
        return self._scope

    def snap(self) -> np.ndarray:
        image = self._scope.snap()
        self._on_frame((image, self._scope.pixel_size_um()))
        return image

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scope, name)


class AcquisitionPanel(QWidget):
    """Plan editor + stage map + run controls for matched-pair acquisition.

    Acts on the app model only: its microscope, its runner (the run is refused while
    another job holds the stand), its messages, frames and stores."""

    def __init__(self, app: AppModel, signals: ScopeSignals,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from thinkscope_gui.pairs.plan import AcquisitionPlan

        self.app = app
        self.scope: Microscope = app.stand
        scope = self.scope
        out = thinkscope_home() / "pairs" / "pairs.h5"
        plan = AcquisitionPlan(output=str(out))
        saved = app_settings().value("acquisition/plan", "")
        if saved:
            # the last plan edited, as JSON in the settings; an invalid one is ignored
            with contextlib.suppress(Exception):
                plan = AcquisitionPlan.model_validate_json(str(saved))
        self.editor = ModelForm(plan, hints=PLAN_HINTS)
        self.editor.changed.connect(self.preview_plan)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.editor)
        self.map = StageMap()
        # stacked, not side by side: the dock is narrow and the plan fields need the width
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(scroll)
        split.addWidget(self.map)
        save, load = QPushButton("Save plan…"), QPushButton("Load plan…")
        save.clicked.connect(self._save_dialog)
        load.clicked.connect(self._load_dialog)
        self.resume_box = QCheckBox("resume into existing file")
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.estimate = StatusLabel(lines=2)  # validation message or time/size estimate
        self.eta = StatusLabel(lines=2)
        self.last_pair = StatusLabel("last pair: –", lines=2)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for w in (save, load, self.resume_box):
            row1.addWidget(w)
        for w in (self.start_button, self.pause_button, self.stop_button):
            row2.addWidget(w)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(self.estimate)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(self.progress)
        lay.addWidget(self.eta)
        lay.addWidget(self.last_pair)
        self.engine: Any = None
        self.last_status: Any = None
        self.events: list[Any] = []
        self._lr_focus: dict[int, Any] = {}
        self._bridge = EventBridge(self)
        self._bridge.event.connect(self._on_event)
        # each frame the engine snaps is shown in the live view: the run can be watched
        self._frames = EventBridge(self)
        self._frames.event.connect(self._show_frame)
        self.frames_shown = 0
        self.plan_ok = False
        self._stop_requested = False
        signals.xyChanged.connect(self.map.set_stage)
        self.map.set_stage(*scope.xy())
        self._set_running(False)
        self.preview_plan()

    # ------------------------------------------------------------------- plan
    def plan(self) -> AcquisitionPlan:
        return cast("AcquisitionPlan", self.editor.value())

    def set_plan(self, plan: AcquisitionPlan) -> None:
        self.editor.set_value(plan)
        self.preview_plan()

    def _hr_field(self, plan: AcquisitionPlan) -> tuple[float, float]:
        h, w = self.scope.image_shape()
        p = self.scope.profile(plan.hr_objective).pixel_size_um
        return (w * p, h * p)

    def preview_plan(self) -> None:
        """Validate the plan as it is edited: draw its tiles and estimate time and size,
        or say what is wrong (and keep Start disabled)."""
        try:
            plan = self.plan()
            plan.validate_against(self.scope)
            field = self._hr_field(plan)
            self.map.set_tiles(plan.tiles(field), field)
            tiles, seconds, nbytes = estimate_run(plan, self.scope)
        except Exception as exc:  # noqa: BLE001 - mid-edit values are often invalid
            self.plan_ok = False
            first = str(exc).strip().splitlines()
            self.estimate.setStyleSheet("color: #c33;")
            self.estimate.setText("plan not valid: " + (" ".join(first[:3]) if first else ""))
        else:
            self.plan_ok = True
            self.estimate.setStyleSheet("")
            self.estimate.setText(f"{tiles} tiles, {plan.lr_objective} → {plan.hr_objective}: "
                                  f"{_human(seconds, nbytes)} → {Path(plan.output).name}")
        if not self.running():
            self.start_button.setEnabled(self.plan_ok)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plan", "plan.json", "JSON (*.json)")
        if path:
            try:
                self.plan().save(path)
            except Exception as exc:  # noqa: BLE001
                self.app.report("Save plan", str(exc))

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load plan", "", "JSON (*.json)")
        if path:
            try:
                from thinkscope_gui.pairs.plan import AcquisitionPlan

                self.set_plan(AcquisitionPlan.load(path))
            except Exception as exc:  # noqa: BLE001
                self.app.report("Load plan", str(exc))

    # -------------------------------------------------------------------- run
    def running(self) -> bool:
        return self.engine is not None

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on and self.plan_ok)
        self.pause_button.setEnabled(on)
        self.stop_button.setEnabled(on)
        self.editor.setEnabled(not on)

    def start(self) -> bool:
        """Validate the plan and start the engine in the background."""
        from thinkscope_gui.pairs.engine import AcquisitionEngine

        try:
            plan = self.plan()
            plan.validate_against(self.scope)
        except Exception as exc:  # noqa: BLE001
            self.app.report("Acquisition plan", str(exc))
            return False
        if self.app.manual_move_running():
            self.app.report("Acquisition", "a stage or focus move is still running; "
                                "start again when it has finished")
            return False
        resume = self.resume_box.isChecked()
        if Path(plan.output).exists() and not resume:
            # never replace a store: write next to it (decided before live stops)
            out = unique_path(plan.output)
            plan = plan.model_copy(update={"output": str(out)})
            self.set_plan(plan)
            self.app.notify(
                "Acquisition", f"{Path(self.plan().output).name}: an earlier store keeps its "
                "name; tick 'resume into existing file' to add to it instead")
        elif resume and not Path(plan.output).exists():
            self.app.report("Acquisition plan",
                                f"nothing to resume: {plan.output} does not exist")
            return False
        Path(plan.output).parent.mkdir(parents=True, exist_ok=True)
        field = self._hr_field(plan)
        self.map.set_tiles(plan.tiles(field), field)
        self.events.clear()
        # WatchedScope stands in for the microscope (it forwards everything to it)
        watched = cast("Microscope", WatchedScope(self.scope, self._frames))
        engine = AcquisitionEngine(plan, watched, self._bridge, resume=resume)
        self.engine = engine
        if not self.app.try_start_job(engine, "Acquisition"):  # another job has the stand
            self.engine = None
            return False
        self._set_running(True)
        self.pause_button.setText("Pause")
        return True

    def _show_frame(self, item: tuple[np.ndarray, float]) -> None:
        """The newest frame the engine took, for the live view (live itself is off)."""
        if self.engine is None:
            return
        image, pixel_size_um = item
        self.app.show_frame(image, pixel_size_um)
        self.frames_shown += 1

    def toggle_pause(self) -> None:
        if self.engine is None:
            return
        from thinkscope_gui.pairs.engine import RunState

        if self.engine.state == RunState.PAUSED:
            self.engine.resume()
            self.pause_button.setText("Pause")
        else:
            self.engine.pause()
            self.pause_button.setText("Resume")

    def stop(self) -> None:
        if self.engine is not None:
            self._stop_requested = True
            self.engine.cancel()
            self.eta.setText("stopping after the current step…")

    def _on_event(self, ev: Any) -> None:
        from thinkscope_gui.pairs.engine import Failed, Finished, PairStored, TileDone

        self.events.append(ev)
        st = ev.status
        self.last_status = st
        self.progress.setRange(0, max(st.total, 1))
        self.progress.setValue(st.done)
        eta = f"ETA {st.eta_s:.0f} s" if st.eta_s else ""
        self.eta.setText(f"{st.state.value} · {st.phase} · {st.done}/{st.total} steps · "
                         f"{st.accepted} accepted, {st.rejected} rejected · {eta}")
        if isinstance(ev, TileDone) and ev.phase == "lr":
            self.map.set_state(ev.tile, "lr")
            self._lr_focus[ev.tile] = ev.z_um
        elif isinstance(ev, PairStored):  # accepted, or PairRejected
            ok = ev.kind == "pair_stored"
            self.map.set_state(ev.tile, "accepted" if ok else "rejected")
            text = f"last pair #{ev.pair_id} (tile {ev.tile}): "
            text += "accepted" if ok else f"rejected ({ev.reason})"
            text += (f", registration correlation {ev.correlation:.3f}, "
                     f"focus {ev.focus_score:.4g} (LR {ev.lr_focus_score:.4g})")
            lr_z = self._lr_focus.get(ev.tile)
            if lr_z is not None:
                text += f", LR autofocus z {lr_z:.2f} µm"
            self.last_pair.setText(text)
        elif isinstance(ev, Finished | Failed):
            self._finished(ev)

    def _finished(self, ev: Any) -> None:
        from thinkscope_gui.pairs.engine import Failed

        self.engine = None
        self._set_running(False)
        self._stop_requested = False
        st = ev.status
        if isinstance(ev, Failed):
            self.app.report("Acquisition failed", ev.error)
        elif st.cancelled:  # Stop at any step, autofocus included: never "failed"
            self.eta.setText(f"cancelled: {st.new_pairs} pair(s) stored by this run, "
                             f"{st.accepted} accepted and {st.rejected} rejected in all, kept "
                             f"in {st.output} (resume to continue)")
        else:
            self.eta.setText(f"{st.message}: {st.accepted} accepted, {st.rejected} rejected "
                             f"in {st.elapsed_s:.0f} s → {st.output}")
        if st.accepted:  # the Training panel observes the app model's stores
            self.app.add_store(st.output)

    def shutdown(self) -> None:
        """Remember the plan; stop a run (stored pairs stay, the file can be resumed)."""
        try:
            s = app_settings()
            s.setValue("acquisition/plan", self.plan().to_json())
            s.sync()
        except Exception:  # noqa: BLE001, S110 - an invalid edit is simply not saved
            pass
        if self.engine is not None:
            self.engine.cancel()
            self.engine.wait(30)
