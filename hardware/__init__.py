"""Microscope access for ThinkScope: profiles, the facade, backends, the simulated stand.

No Qt and no torch here.  Heavy pieces (pymmcore-plus) load lazily so that importing
``hardware.profiles`` from the learning code stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hardware.errors import MicroscopeError, SafetyError
from hardware.profiles import ObjectiveProfile, ProfileError, load_profiles

if TYPE_CHECKING:
    from hardware.microscope import Frame, Microscope, open_microscope

__all__ = [
    "Frame",
    "Microscope",
    "MicroscopeError",
    "ObjectiveProfile",
    "ProfileError",
    "SafetyError",
    "load_profiles",
    "open_microscope",
]

_LAZY = {"Frame", "Microscope", "open_microscope"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from hardware import microscope

        return getattr(microscope, name)
    raise AttributeError(f"module 'hardware' has no attribute {name!r}")
