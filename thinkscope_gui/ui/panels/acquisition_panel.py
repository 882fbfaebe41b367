"""Pair acquisition panel: edit/save/load a plan, run it, watch the stage map fill in.

The AcquisitionEngine runs in its own thread; its events cross to the GUI thread through
an EventBridge. The live view and manual controls pause while the engine drives the stand.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

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
from ..widgets import StatusLabel
from ..workers import EventBridge
from .stage_map import StageMap


class AcquisitionPanel(QWidget):
    """Plan editor + stage map + run controls for matched-pair acquisition."""

    def __init__(self, scope: Any, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from thinkscope_gui.pairs.plan import AcquisitionPlan

        self.scope = scope
        self.window_ = window
        out = thinkscope_home() / "pairs" / "pairs.h5"
        plan = AcquisitionPlan(output=str(out))
        saved = app_settings().value("acquisition/plan", "")
        if saved:
            # the last plan edited, as JSON in the settings; an invalid one is ignored
            with contextlib.suppress(Exception):
                plan = AcquisitionPlan.model_validate_json(str(saved))
        self.editor = ModelForm(plan)
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
        self.eta = StatusLabel(lines=2)
        self.last_pair = StatusLabel("last pair: –", lines=2)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        for w in (save, load, self.resume_box):
            row1.addWidget(w)
        for w in (self.start_button, self.pause_button, self.stop_button):
            row2.addWidget(w)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(self.progress)
        lay.addWidget(self.eta)
        lay.addWidget(self.last_pair)
        self.engine: Any = None
        self.last_status: Any = None
        self.events: list[Any] = []
        self._lr_focus: dict[int, Any] = {}
        self._was_live = False
        self._bridge = EventBridge(self)
        self._bridge.event.connect(self._on_event)
        window.signals.xyChanged.connect(self.map.set_stage)
        self._set_running(False)
        self.preview_plan()

    # ------------------------------------------------------------------- plan
    def plan(self) -> Any:
        return self.editor.value()

    def set_plan(self, plan: Any) -> None:
        self.editor.set_value(plan)
        self.preview_plan()

    def _hr_field(self, plan: Any) -> tuple[float, float]:
        h, w = self.scope.image_shape()
        p = self.scope.profile(plan.hr_objective).pixel_size_um
        return (w * p, h * p)

    def preview_plan(self) -> None:
        """Draw the planned tiles; invalid edits just leave the old map."""
        try:
            plan = self.plan()
            field = self._hr_field(plan)
            self.map.set_tiles(plan.tiles(field), field)
        except Exception:  # noqa: BLE001 - mid-edit values are often invalid
            return

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plan", "plan.json", "JSON (*.json)")
        if path:
            try:
                self.plan().save(path)
            except Exception as exc:  # noqa: BLE001
                self.window_.report("Save plan", str(exc))

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load plan", "", "JSON (*.json)")
        if path:
            try:
                from thinkscope_gui.pairs.plan import AcquisitionPlan

                self.set_plan(AcquisitionPlan.load(path))
            except Exception as exc:  # noqa: BLE001
                self.window_.report("Load plan", str(exc))

    # -------------------------------------------------------------------- run
    def running(self) -> bool:
        return self.engine is not None

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.pause_button.setEnabled(on)
        self.stop_button.setEnabled(on)
        self.editor.setEnabled(not on)
        for name in ("objective_widget", "stage_widget", "focus_widget"):
            w = getattr(self.window_, name, None)
            if w is not None:
                w.setEnabled(not on)

    def start(self) -> bool:
        """Validate the plan and start the engine in the background."""
        from thinkscope_gui.pairs.engine import AcquisitionEngine

        try:
            plan = self.plan()
            plan.validate_against(self.scope)
        except Exception as exc:  # noqa: BLE001
            self.window_.report("Acquisition plan", str(exc))
            return False
        Path(plan.output).parent.mkdir(parents=True, exist_ok=True)
        field = self._hr_field(plan)
        self.map.set_tiles(plan.tiles(field), field)
        self.events.clear()
        self._was_live = self.scope.is_live()
        if self._was_live:
            self.window_.set_live(False)
        self.engine = AcquisitionEngine(plan, self.scope, self._bridge,
                                        resume=self.resume_box.isChecked())
        self._set_running(True)
        self.pause_button.setText("Pause")
        self.engine.start()
        return True

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
            self.engine.cancel()
            self.eta.setText("stopping after the current step…")

    def _on_event(self, ev: Any) -> None:
        self.events.append(ev)
        st = ev.status
        self.last_status = st
        self.progress.setRange(0, max(st.total, 1))
        self.progress.setValue(st.done)
        eta = f"ETA {st.eta_s:.0f} s" if st.eta_s else ""
        self.eta.setText(f"{st.state.value} · {st.phase} · {st.done}/{st.total} steps · "
                         f"{st.accepted} accepted, {st.rejected} rejected · {eta}")
        d = ev.data
        if ev.kind == "tile_done" and d.get("phase") == "lr":
            self.map.set_state(int(d["tile"]), "lr")
            self._lr_focus[int(d["tile"])] = d.get("z_um")
        elif ev.kind in ("pair_stored", "pair_rejected"):
            ok = ev.kind == "pair_stored"
            self.map.set_state(int(d["tile"]), "accepted" if ok else "rejected")
            corr = d.get("correlation")
            focus = d.get("focus_score")
            lr_z = self._lr_focus.get(int(d["tile"]))
            text = f"last pair #{d.get('pair_id')} (tile {d.get('tile')}): "
            text += "accepted" if ok else f"rejected ({d.get('reason')})"
            if corr is not None:
                text += f", registration correlation {corr:.3f}"
            if focus is not None:
                text += f", focus {focus:.4g}"
            if lr_z is not None:
                text += f", LR autofocus z {lr_z:.2f} µm"
            self.last_pair.setText(text)
        elif ev.kind in ("finished", "failed"):
            self._finished(ev)

    def _finished(self, ev: Any) -> None:
        self.engine = None
        self._set_running(False)
        st = ev.status
        if ev.kind == "failed":
            self.window_.report("Acquisition failed", ev.data.get("error", st.message))
        else:
            self.eta.setText(f"{st.message}: {st.accepted} accepted, {st.rejected} rejected "
                             f"in {st.elapsed_s:.0f} s → {st.output}")
            training = self.window_.panels.get("Training")
            if training is not None and hasattr(training, "add_store") and st.accepted:
                training.add_store(st.output)
        if self._was_live:
            self.window_.set_live(True)

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
