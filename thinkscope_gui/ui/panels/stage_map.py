"""Pure stage-map widget: planned tiles as rectangles that fill in as pairs complete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from qtpy.QtCore import QRectF
from qtpy.QtGui import QBrush, QColor, QPen
from qtpy.QtWidgets import QGraphicsRectItem, QLabel, QVBoxLayout, QWidget

COLORS = {"planned": QColor(120, 120, 120, 60), "lr": QColor(70, 130, 220, 120),
          "accepted": QColor(40, 190, 70, 170), "rejected": QColor(220, 50, 50, 170)}
#: legend wording for each state
LEGEND = {"planned": "planned", "lr": "LR taken", "accepted": "pair accepted",
          "rejected": "rejected"}


def legend_html() -> str:
    """Coloured squares with their meaning, and the stage marker."""
    parts = []
    for state, text in LEGEND.items():
        c = COLORS[state]
        parts.append(f"<span style='color: rgb({c.red()},{c.green()},{c.blue()}); "
                     f"font-size: large'>■</span>&nbsp;{text}")
    parts.append("<span style='color: #cc0'>✚</span>&nbsp;stage")
    return " &nbsp; ".join(parts)


class StageMap(QWidget):
    """Tiles in stage µm (y down, as in the camera image); the stage position as a cross."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.setLabel("bottom", "x", units="µm")
        self.plot.setLabel("left", "y", units="µm")
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.marker = pg.ScatterPlotItem(size=12, symbol="+", pen=pg.mkPen("y", width=2))
        # the marker never drives the range: the plan fills the map even when the stage
        # is far away (its position is in the legend line)
        self.plot.addItem(self.marker, ignoreBounds=True)
        self.plot.disableAutoRange()
        self.legend = QLabel(legend_html())
        self.legend.setWordWrap(True)
        self.stage_text = QLabel()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.legend)
        lay.addWidget(self.stage_text)
        self.plot.setMinimumHeight(120)
        self._rects: dict[int, QGraphicsRectItem] = {}
        self.bounds = QRectF()
        self._stage: tuple[float, float] | None = None
        self.states: dict[int, str] = {}

    def set_tiles(self, tiles: Sequence[Any], field_um: tuple[float, float]) -> None:
        """Show planned tiles (objects with index, x, y) with the given field size."""
        for r in self._rects.values():
            self.plot.removeItem(r)
        self._rects.clear()
        self.states.clear()
        fw, fh = field_um
        self.bounds = QRectF()
        for t in tiles:
            rect = QGraphicsRectItem(QRectF(t.x - fw / 2, t.y - fh / 2, fw, fh))
            pen = QPen(QColor(200, 200, 200))
            pen.setCosmetic(True)
            rect.setPen(pen)
            self.plot.addItem(rect)
            self._rects[t.index] = rect
            self.set_state(t.index, "planned")
            self.bounds = self.bounds.united(rect.rect())
        self.show_plan()

    def show_plan(self) -> None:
        """Range the map on the planned tiles (not on the stage cross)."""
        if not self.bounds.isEmpty():
            self.plot.setRange(self.bounds, padding=0.08)
        self._stage_label()

    def set_state(self, index: int, state: str) -> None:
        """planned | lr | accepted | rejected."""
        rect = self._rects.get(index)
        if rect is None:
            return
        self.states[index] = state
        rect.setBrush(QBrush(COLORS[state]))

    def set_stage(self, x: float, y: float) -> None:
        self.marker.setData([x], [y])
        self._stage = (x, y)
        self._stage_label()

    def _stage_label(self) -> None:
        if self._stage is None:
            return
        x, y = self._stage
        inside = self.bounds.contains(x, y) if not self.bounds.isEmpty() else True
        self.stage_text.setText(f"stage at x {x:.1f}, y {y:.1f} µm"
                                + ("" if inside else " (outside the plan)"))

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)
