"""The names of the augmentation recipes (learn/augment.py `augmentations_for`).

Why a module of its own: the command-line parsers offer these names as choices, and
building them must stay free of numpy and torch (every `main.py` start, the GUI's
included, builds every parser); TrainConfig validates against the same names.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["AUGMENT_RECIPES", "AugmentRecipe"]

AugmentRecipe = Literal["robust", "mild", "noisy", "off"]
AUGMENT_RECIPES: tuple[str, ...] = get_args(AugmentRecipe)
