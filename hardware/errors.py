"""Errors raised by the hardware layer (no Qt, no pymmcore types leak through them)."""

from __future__ import annotations

__all__ = ["MicroscopeError", "SafetyError"]


class MicroscopeError(RuntimeError):
    """The microscope could not be opened or did not do what was asked."""


class SafetyError(MicroscopeError):
    """A request was refused because it could damage the slide, an objective or the stage."""
