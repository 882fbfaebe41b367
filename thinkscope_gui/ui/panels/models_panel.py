"""Models panel: list model files, show what they were trained for, activate/import/export."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..settings import thinkscope_home
from ..widgets import StatusLabel
from .model_catalog import ModelEntry, data_text, metrics_text, read_model_meta, scan_models
from .model_catalog import staleness as stale_reason

if TYPE_CHECKING:
    from thinkscope_gui.app_model import AppModel

    from ..scope_signals import ScopeSignals

COLUMNS = ("Model", "Objectives", "Scale", "Metrics", "Date", "Training data", "Status")
#: widest a column grows before its text is elided (the full text is in the tooltip)
MAX_COLUMN_PX = 180


class ModelsPanel(QWidget):
    """Lists models from resources/models and $THINKSCOPE_HOME/models.

    It observes the app model (the active model's state, the catalogue, the engines being
    ready) and acts on it: Activate asks ``app.request_model``; whoever loads models answers
    through the app's model state, which this list and the status bar both show."""

    def __init__(self, app: AppModel, signals: ScopeSignals,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.entries: list[ModelEntry] = []
        app.events.catalogue.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.doubleClicked.connect(lambda _i: self.activate_selected())
        buttons = QHBoxLayout()
        self.refresh_button, self.activate_button = QPushButton("Refresh"), QPushButton("Activate")
        self.import_button, self.export_button = QPushButton("Import…"), QPushButton("Export…")
        for b, slot in ((self.refresh_button, self.refresh),
                        (self.activate_button, self.activate_selected),
                        (self.import_button, self._import_dialog),
                        (self.export_button, self._export_dialog)):
            b.clicked.connect(slot)
            buttons.addWidget(b)
        self.info = StatusLabel(lines=2)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addLayout(buttons)
        lay.addWidget(self.info)
        app.events.model.connect(lambda _state: self.refresh())
        signals.objectiveChanged.connect(lambda _l: self.refresh())
        if "thinkscope_gui.learn.modelfile" in sys.modules:
            self.refresh()
        else:
            # reading model headers needs the learn engine (torch): the window imports
            # it in the background after the first frame and then lists the models
            self.info.setText("looking for models…")
            app.events.engines_ready.connect(self.refresh)

    def _profiles(self) -> dict[str, Any]:
        try:
            return dict(self.app.stand.profiles)
        except Exception:  # noqa: BLE001
            return {}

    def refresh(self) -> None:
        """Re-scan the model folders and re-judge staleness against the current profiles."""
        if ("thinkscope_gui.learn.modelfile" not in sys.modules
                and not self.app.engines_ready):
            return  # still starting: the engines_ready event refreshes
        self.info.setText("")
        self.entries = scan_models()
        profiles = self._profiles()
        state = self.app.model
        active = state.path
        self.table.setRowCount(len(self.entries))
        for row, e in enumerate(self.entries):
            m = e.meta
            status = e.error or stale_reason(m, profiles) or "ok"
            if active is not None and Path(active).resolve() == e.path.resolve():
                if status == "ok" and not state.usable:
                    status = "disabled"  # same words as the status bar (state.summary)
                status = "active" if status == "ok" else f"active, {status}"
            values = (e.path.name, e.objectives, f"{m.scale:g}" if m else "", metrics_text(m),
                      (m.created[:10] if m else ""), data_text(m), status)
            for col, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setToolTip(str(e.path) if col == 0 else v)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        for col in range(len(COLUMNS)):
            if self.table.columnWidth(col) > MAX_COLUMN_PX:
                self.table.setColumnWidth(col, MAX_COLUMN_PX)
        self.info.setText(f"active model: {state.summary}")

    def status_of(self, path: Path) -> str:
        """Status column text for ``path`` (tests and scripts)."""
        for row, e in enumerate(self.entries):
            if e.path.resolve() == Path(path).resolve():
                item = self.table.item(row, len(COLUMNS) - 1)
                return item.text() if item is not None else ""
        return ""

    def selected(self) -> ModelEntry | None:
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows else None

    def activate_selected(self) -> None:
        e = self.selected()
        if e is None:
            return
        reason = stale_reason(e.meta, self._profiles())
        if reason:
            self.app.report("Model is stale", f"{e.path.name}: {reason}")
            return
        self.app.request_model(e.path)

    def import_model(self, src: str | Path) -> Path:
        """Validate (metadata readable) and copy into $THINKSCOPE_HOME/models."""
        src = Path(src)
        read_model_meta(src)
        dest_dir = thinkscope_home() / "models"
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / src.name
        if dest.resolve() != src.resolve():
            shutil.copy2(src, dest)
        self.refresh()
        return dest

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import model", "",
                                              "Models (*.safetensors)")
        if path:
            try:
                dest = self.import_model(path)
                self.info.setText(f"imported to {dest}")
            except Exception as exc:  # noqa: BLE001
                self.app.report("Import failed", str(exc))

    def _export_dialog(self) -> None:
        e = self.selected()
        if e is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export model", e.path.name,
                                              "Models (*.safetensors)")
        if path:
            try:
                shutil.copy2(e.path, path)
                self.info.setText(f"exported to {path}")
            except Exception as exc:  # noqa: BLE001
                self.app.report("Export failed", str(exc))
