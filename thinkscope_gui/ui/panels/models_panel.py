"""Models panel: list model files, show what they were trained for, activate/import/export."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

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

COLUMNS = ("Model", "Objectives", "Scale", "Metrics", "Date", "Training data", "Status")
#: widest a column grows before its text is elided (the full text is in the tooltip)
MAX_COLUMN_PX = 180


class ModelsPanel(QWidget):
    """Lists models from resources/models and $THINKSCOPE_HOME/models."""

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_ = window
        self.entries: list[ModelEntry] = []
        window.app.events.catalogue.connect(self.refresh)
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
        for text, slot in (("Refresh", self.refresh), ("Activate", self.activate_selected),
                           ("Import…", self._import_dialog), ("Export…", self._export_dialog)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        self.info = StatusLabel(lines=2)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addLayout(buttons)
        lay.addWidget(self.info)
        window.models.changed.connect(self.refresh)
        window.signals.objectiveChanged.connect(lambda _l: self.refresh())
        if "thinkscope_gui.learn.modelfile" in sys.modules:
            self.refresh()
        else:
            # reading model headers needs the learn engine (torch): the window imports
            # it in the background after the first frame and then lists the models
            self.info.setText("looking for models…")
            window.startupDone.connect(self.refresh)

    def _profiles(self) -> dict[str, Any]:
        try:
            return dict(self.window_.scope.profiles)
        except Exception:  # noqa: BLE001
            return {}

    def refresh(self) -> None:
        """Re-scan the model folders and re-judge staleness against the current profiles."""
        if ("thinkscope_gui.learn.modelfile" not in sys.modules
                and not getattr(self.window_, "ready", True)):
            return  # still starting: startupDone refreshes
        self.info.setText("")
        self.entries = scan_models()
        profiles = self._profiles()
        active = self.window_.models.path
        self.table.setRowCount(len(self.entries))
        for row, e in enumerate(self.entries):
            m = e.meta
            status = e.error or stale_reason(m, profiles) or "ok"
            if active is not None and Path(active).resolve() == e.path.resolve():
                if status == "ok" and not self.window_.models.usable:
                    status = "disabled"  # same words as the status bar (models.summary)
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
        self.info.setText(f"active model: {self.window_.models.summary()}")

    def status_of(self, path: Path) -> str:
        """Status column text for ``path`` (tests and scripts)."""
        for row, e in enumerate(self.entries):
            if e.path.resolve() == Path(path).resolve():
                return self.table.item(row, len(COLUMNS) - 1).text()
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
            self.window_.report("Model is stale", f"{e.path.name}: {reason}")
            return
        self.window_.activate_model(e.path)

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
                self.window_.report("Import failed", str(exc))

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
                self.window_.report("Export failed", str(exc))
