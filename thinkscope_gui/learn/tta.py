"""Self-ensemble for stills: the model's mean over the 8 dihedral orientations.

Why: the network is not exactly equivariant to rotations and flips, so its errors differ
between orientations and partly cancel in the mean, for 8x the compute. That is fine for
a still or a whole field, never for the live view. `main.py enhance --tta` uses it;
`main.py evaluate --tta` measures what it gains (README, "Models").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .augment import dihedral
from .normalise import from_unit, to_unit

if TYPE_CHECKING:
    from .infer import Enhancer

__all__ = ["SelfEnsemble", "enhance_tta"]


def enhance_tta(enh: Enhancer, frame: np.ndarray, bit_depth: int | None = None) -> np.ndarray:
    """Like ``enh.enhance`` (same dtype, channels and shape out) but averaged over the 8
    rotations/flips, each undone on the output. The frame is edge-padded to a multiple of
    the scale's denominator first, so every orientation's output lands on the same HR grid
    (at 2.5x an odd side would shift the flipped outputs by half an HR pixel)."""
    a = np.asarray(frame)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C) frame, got shape {a.shape}")
    divisor = enh.divisor(a.dtype, bit_depth)
    x = to_unit(a, divisor)
    h, w = x.shape[:2]
    q = int(getattr(enh, "_q", 1))
    ph, pw = (-h) % q, (-w) % q
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw)) + ((0, 0),) * (x.ndim - 2), mode="edge")
    acc: np.ndarray | None = None
    for k in range(8):
        y = enh.enhance(np.ascontiguousarray(dihedral(x, k), dtype=np.float32))
        # undo it: a rotation by its opposite; a reflection (k >= 4) is its own inverse
        y = dihedral(y, (-k) % 4 if k < 4 else k)
        acc = y.astype(np.float32) if acc is None else acc + y
    assert acc is not None
    hh, ww = enh.output_shape(h, w)
    return from_unit(np.clip(acc[:hh, :ww] / 8.0, 0, 1), a.dtype, divisor)


class SelfEnsemble:
    """An Enhancer whose ``enhance`` is the 8-orientation self-ensemble (everything else is
    the wrapped Enhancer's), so file streaming and evaluation take it unchanged."""

    def __init__(self, enh: Enhancer) -> None:
        self.enhancer = enh

    def enhance(self, frame: np.ndarray, bit_depth: int | None = None) -> np.ndarray:
        return enhance_tta(self.enhancer, frame, bit_depth)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.enhancer, name)
