"""Exceptions of the learning package (plain ValueErrors so CLIs and the GUI can show them)."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A model or checkpoint file is missing, truncated, corrupt or not a ThinkScope model."""


class ModelMismatchError(ValueError):
    """A model was asked to enhance images from an objective it was not trained for."""


class TrainingError(RuntimeError):
    """Training cannot go on (no data, diverged loss, incompatible warm start)."""
