"""Learning: datasets, models, training, inference and model files (no Qt here).

Heavy modules (torch) load lazily so `import thinkscope_gui.learn` stays cheap.
"""

from __future__ import annotations

from typing import Any

from .errors import ModelFileError, ModelMismatchError, TrainingError

__all__ = ["Enhancer", "ModelFileError", "ModelMeta", "ModelMismatchError", "TrainConfig",
           "TrainStatus", "Trainer", "TrainingError", "train_briefly"]

_LAZY = {"Enhancer": ".infer", "ModelMeta": ".meta", "TrainConfig": ".train",
         "TrainStatus": ".train", "Trainer": ".train", "train_briefly": ".train"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
