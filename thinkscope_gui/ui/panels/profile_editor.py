"""Pure editor for objective profiles (a table); no microscope access."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

COLUMNS = ("label", "magnification", "na", "immersion", "pixel_size_um", "offset_x_um",
           "offset_y_um", "parfocal_z_um", "rotation_deg", "retired")


class ProfileEditor(QWidget):
    """Edit ObjectiveProfile values; ``profiles()`` validates and returns new ones."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.itemChanged.connect(lambda _i: self.changed.emit())
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)
        self._cls: Any = None

    def set_profiles(self, profiles: dict[str, Any]) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(profiles))
        for row, p in enumerate(profiles.values()):
            self._cls = type(p)
            values = (p.label, p.magnification, p.na, p.immersion, p.pixel_size_um,
                      p.offset_xy_um[0], p.offset_xy_um[1], p.parfocal_z_um, p.rotation_deg)
            for col, v in enumerate(values):
                item = QTableWidgetItem(f"{v:g}" if isinstance(v, float) else str(v))
                if col == 0:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(row, col, item)
            retired = QTableWidgetItem()
            retired.setFlags(retired.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            retired.setCheckState(Qt.CheckState.Checked if p.retired else Qt.CheckState.Unchecked)
            self.table.setItem(row, len(COLUMNS) - 1, retired)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()

    def profiles(self) -> dict[str, Any]:
        """Validated profiles; raises ValueError naming the row and field on bad input."""
        out: dict[str, Any] = {}
        for row in range(self.table.rowCount()):
            cell = [self.table.item(row, c).text() for c in range(len(COLUMNS) - 1)]
            label = cell[0]
            try:
                data = {"label": label, "magnification": float(cell[1]), "na": float(cell[2]),
                        "immersion": cell[3], "pixel_size_um": float(cell[4]),
                        "offset_xy_um": (float(cell[5]), float(cell[6])),
                        "parfocal_z_um": float(cell[7]), "rotation_deg": float(cell[8]),
                        "retired": self.table.item(row, len(COLUMNS) - 1).checkState()
                        == Qt.CheckState.Checked}
                out[label] = self._cls.model_validate(data)
            except Exception as exc:  # noqa: BLE001 - pydantic or float() errors
                raise ValueError(f"objective {label}: {exc}") from exc
        return out
