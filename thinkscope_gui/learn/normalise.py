"""The one place where camera pixels become [0, 1] floats and back, and where [0, 1]
floats go into network space and back.

Why one module: a 12-bit camera delivers uint16 frames whose full scale is 4095, not
65535. Training divides by 2**bit_depth - 1; if inference, the live view, the
consistency map or a metric divided by the dtype maximum instead, a model would see its
input 16 times too dark (the issue measured 32 dB instead of 59 dB). Every conversion
goes through :func:`divisor_for`, which uses the frame's own bit depth when known, else
the model's recorded one, and only for uint8 (whose range is fixed) the dtype maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "bits_divisor",
    "denormalise",
    "divisor_for",
    "from_unit",
    "normalise",
    "resolve_bit_depth",
    "to_unit",
]


def bits_divisor(bit_depth: int) -> float:
    """Full-scale value 2**bit_depth - 1 of a camera with ``bit_depth`` significant bits."""
    b = int(bit_depth)
    if not 1 <= b <= 16:
        raise ValueError(f"bit depth must be 1..16, got {bit_depth}")
    return float(2**b - 1)


def resolve_bit_depth(dtype: Any, bit_depth: int | None = None,
                      model_bit_depth: int | None = None) -> int | None:
    """Significant bits of an integer frame: the frame's own (``bit_depth``, from the core)
    when given; else the model's record when it fits the dtype; else the dtype's width.
    None for float frames (already in [0, 1]).

    Why the model's record before the dtype: a uint16 TIFF from a 12-bit camera carries no
    bit depth, and the model trained on that camera knows it; 16 would be a guess that is
    wrong for every 10-, 12- and 14-bit camera.
    """
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return None
    if dt.kind not in "ui":
        raise ValueError(f"unsupported frame dtype {dt}")
    width = 8 * dt.itemsize
    if bit_depth:
        b = int(bit_depth)
        if not 1 <= b <= width:
            raise ValueError(f"bit depth {b} does not fit a {dt} frame")
        return b
    if model_bit_depth and 8 < int(model_bit_depth) <= width:
        return int(model_bit_depth)
    return min(width, 16)


def divisor_for(dtype: Any, bit_depth: int | None = None,
                model_bit_depth: int | None = None) -> float:
    """The value that maps a frame of ``dtype`` to [0, 1] (1.0 for float frames)."""
    b = resolve_bit_depth(dtype, bit_depth, model_bit_depth)
    return 1.0 if b is None else bits_divisor(b)


def to_unit(img: np.ndarray, divisor: float) -> np.ndarray:
    """Frame -> float32 in [0, 1] (for a frame within its camera's range)."""
    return np.asarray(img).astype(np.float32, copy=False) / np.float32(divisor)


def from_unit(x: np.ndarray, dtype: Any, divisor: float) -> np.ndarray:
    """[0, 1] floats -> a frame of ``dtype``: integers are rounded and clipped to the
    camera's full scale (``divisor``), so the output is a valid frame of that camera."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        top = min(float(divisor), float(np.iinfo(dt).max))
        return np.clip(np.rint(np.asarray(x, np.float32) * divisor), 0, top).astype(dt)
    return np.asarray(x).astype(dt)


def _stats(norm: Any, x: Any) -> tuple[Any, Any]:
    if isinstance(x, np.ndarray):   # channels-last (..., C): a compiled engine's layout
        dt = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        return np.asarray(norm.mean, dt), np.asarray(norm.std, dt)
    import torch

    m = torch.tensor(norm.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(norm.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return m, s


def normalise(x: Any, norm: Any) -> Any:
    """[0, 1] -> network space, with a model's Normalisation: an (N, C, H, W) tensor (torch)
    or an (..., C) channels-last array (numpy, as compiled engines take it)."""
    m, s = _stats(norm, x)
    return (x - m) / s


def denormalise(x: Any, norm: Any, inplace: bool = False) -> Any:
    """Network space -> [0, 1] (not clipped); same layouts as :func:`normalise`.
    ``inplace``: overwrite ``x`` (a full-size output: saves a copy per frame)."""
    m, s = _stats(norm, x)
    if not inplace:
        return x * s + m
    if isinstance(x, np.ndarray):
        x *= s
        x += m
        return x
    return x.mul_(s).add_(m)
