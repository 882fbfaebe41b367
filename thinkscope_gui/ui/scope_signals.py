"""Bridge the microscope's psygnal events (fired from any thread) onto Qt signals."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal

if TYPE_CHECKING:
    from hardware.microscope import Microscope


class ScopeSignals(QObject):
    """Qt mirrors of ``Microscope.events``; emission from worker threads is queued."""

    objectiveChanged = Signal(str)
    xyChanged = Signal(float, float)
    zChanged = Signal(float)
    exposureChanged = Signal(float)

    _NAMES = {"objective_changed": "objectiveChanged", "xy_changed": "xyChanged",
              "z_changed": "zChanged", "exposure_changed": "exposureChanged"}

    def __init__(self, scope: Microscope, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._connections: list[tuple[Any, Any]] = []
        events = getattr(scope, "events", None)
        for src, dst in self._NAMES.items():
            sig = getattr(events, src, None)
            if sig is None:
                continue
            slot = getattr(self, dst).emit
            sig.connect(slot)
            self._connections.append((sig, slot))

    def disconnect_scope(self) -> None:
        """Detach from the microscope (on window close) so no late events hit dead widgets."""
        for sig, slot in self._connections:
            with contextlib.suppress(Exception):  # already gone
                sig.disconnect(slot)
        self._connections.clear()
