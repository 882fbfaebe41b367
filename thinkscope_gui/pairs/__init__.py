"""Matched LR/HR pair acquisition: planning, autofocus, registration and the HDF5 store.

No Qt here: engines report through callbacks; ``thinkscope_gui.ui`` turns them into signals.
Names load lazily so ``from thinkscope_gui.pairs import PairStore`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AcquisitionPlan": "plan", "AutofocusSettings": "plan", "QualityGates": "plan",
    "PlanError": "plan", "Tile": "plan",
    "autofocus": "autofocus", "AutofocusResult": "autofocus", "FocusMap": "autofocus",
    "focus_metric": "autofocus",
    "register": "registration", "Registration": "registration",
    "RegistrationError": "registration", "cut_patches": "registration",
    "PairStore": "store", "PairWriter": "store", "StoreError": "store",
    "StoreMismatchError": "store", "StoreFullError": "store",
    "AcquisitionEngine": "engine", "AcquisitionEvent": "engine",
    "AcquisitionStatus": "engine", "RunState": "engine",
    "bench_acquire": "bench",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
