"""Travel limits and the safe focus position of a real stand, from the user folder.

Micro-Manager configurations rarely state stage limits, yet the facade must never drive
outside them; labs write them once in ``$THINKSCOPE_HOME/stage.json``::

    {"xy_limits_um": [-50000, 50000, -30000, 30000], "z_limits_um": [-2000, 8000],
     "safe_z_um": -2000}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hardware.errors import MicroscopeError
from hardware.profiles import thinkscope_home

__all__ = ["load_stage_settings", "stage_settings_path"]


def stage_settings_path() -> Path:
    """``$THINKSCOPE_HOME/stage.json`` (may not exist)."""
    return thinkscope_home() / "stage.json"


def _floats(path: Path, data: dict[str, Any], key: str, n: int) -> tuple[float, ...] | None:
    if key not in data:
        return None
    value = data[key]
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise MicroscopeError(f"{path}: field '{key}' must be {n} numbers") from None
    if len(out) != n or any(lo >= hi for lo, hi in zip(out[::2], out[1::2], strict=True)):
        raise MicroscopeError(f"{path}: field '{key}' must be {n} numbers as (min, max) pairs")
    return out


def load_stage_settings(path: Path | None = None) -> dict[str, Any]:
    """Keyword arguments for the facade: stage_limits, z_limits, safe_z (absent ones omitted)."""
    path = path or stage_settings_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MicroscopeError(f"{path}: cannot read stage settings: {e}") from e
    if not isinstance(data, dict):
        raise MicroscopeError(f"{path}: top level must be a JSON object")
    out: dict[str, Any] = {}
    if (xy := _floats(path, data, "xy_limits_um", 4)) is not None:
        out["stage_limits"] = xy
    if (z := _floats(path, data, "z_limits_um", 2)) is not None:
        out["z_limits"] = z
    if "safe_z_um" in data:
        try:
            out["safe_z"] = float(data["safe_z_um"])
        except (TypeError, ValueError):
            raise MicroscopeError(f"{path}: field 'safe_z_um' must be a number") from None
    return out
