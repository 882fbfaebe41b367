"""Travel limits and the safe focus position of a stand, stored per configuration.

Micro-Manager configurations rarely state stage limits or where focus may go before an
objective change, yet the facade must never drive outside them and must retract focus
before every turret move. The lab manager states them once (``main.py stand`` or the
Objectives panel) and they are kept in ``$THINKSCOPE_HOME/stage.json``, keyed by the
stand (the ``.cfg`` file's absolute path, ``pycromanager:PORT`` or ``sim``)::

    {"stands": {"/labs/scope1/MMConfig.cfg": {"xy_limits_um": [-50000, 50000, -30000, 30000],
                                              "z_limits_um": [-2000, 8000], "safe_z_um": -2000}},
     "xy_limits_um": [...], "z_limits_um": [...], "safe_z_um": ...}

Top-level fields (the older single-stand form) apply to every real stand; a stand's own
entry wins, field by field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hardware.errors import MicroscopeError
from hardware.profiles import thinkscope_home

__all__ = [
    "FIELDS",
    "load_stage_settings",
    "save_stage_settings",
    "stage_settings_path",
    "stand_key",
]

#: facade keyword -> stage.json field
FIELDS = {"stage_limits": "xy_limits_um", "z_limits": "z_limits_um", "safe_z": "safe_z_um"}


def stage_settings_path() -> Path:
    """``$THINKSCOPE_HOME/stage.json`` (may not exist)."""
    return thinkscope_home() / "stage.json"


def stand_key(source: str) -> str:
    """The key a stand's settings are stored under: a ``.cfg``'s absolute path, else the source."""
    src = source.strip() or "sim"
    if src == "pycromanager":
        return "pycromanager:4827"  # Micro-Manager's default ZMQ port
    if src == "sim" or src.startswith(("sim:", "pycromanager")):
        return src
    return str(Path(src).expanduser().resolve())


def _floats(where: str, data: dict[str, Any], key: str, n: int) -> tuple[float, ...] | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise MicroscopeError(f"{where}: field '{key}' must be {n} numbers") from None
    if (len(out) != n or not all(math.isfinite(v) for v in out)
            or any(lo >= hi for lo, hi in zip(out[::2], out[1::2], strict=True))):
        raise MicroscopeError(f"{where}: field '{key}' must be {n} numbers as (min, max) pairs")
    return out


def _parse(where: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MicroscopeError(f"{where}: must be a JSON object")
    out: dict[str, Any] = {}
    if (xy := _floats(where, data, "xy_limits_um", 4)) is not None:
        out["stage_limits"] = xy
    if (z := _floats(where, data, "z_limits_um", 2)) is not None:
        out["z_limits"] = z
    if data.get("safe_z_um") is not None:
        try:
            out["safe_z"] = float(data["safe_z_um"])
        except (TypeError, ValueError):
            raise MicroscopeError(f"{where}: field 'safe_z_um' must be a number") from None
        if not math.isfinite(out["safe_z"]):
            raise MicroscopeError(f"{where}: field 'safe_z_um' must be a finite number")
    return out


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MicroscopeError(f"{path}: cannot read stage settings: {e}") from e
    if not isinstance(data, dict):
        raise MicroscopeError(f"{path}: top level must be a JSON object")
    return data


def load_stage_settings(
    path: Path | None = None, source: str | None = None, *, shared: bool = True
) -> dict[str, Any]:
    """Keyword arguments for the facade: stage_limits, z_limits, safe_z (absent ones omitted).

    ``source`` selects the stand's own entry; ``shared`` adds the top-level fields that
    apply to every real stand (not to the simulator, which reports its own limits).
    """
    path = path or stage_settings_path()
    data = _read(path)
    out = _parse(str(path), {k: v for k, v in data.items() if k != "stands"}) if shared else {}
    stands = data.get("stands", {})
    if not isinstance(stands, dict):
        raise MicroscopeError(f"{path}: field 'stands' must be an object keyed by configuration")
    if source is not None and (own := stands.get(stand_key(source))) is not None:
        out.update(_parse(f"{path}: stands.{stand_key(source)}", own))
    return out


def save_stage_settings(source: str, path: Path | None = None, **values: Any) -> Path:
    """Store ``stage_limits`` / ``z_limits`` / ``safe_z`` for this stand; returns the file.

    A value of ``None`` removes that setting. The values are validated before anything is
    written, and the file is replaced atomically, so a bad value never loses the others.
    """
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown stage settings {sorted(unknown)}; known: {sorted(FIELDS)}")
    path = path or stage_settings_path()
    data = _read(path)
    stands = data.setdefault("stands", {})
    key = stand_key(source)
    entry = dict(stands.get(key, {}))
    for name, value in values.items():
        field = FIELDS[name]
        if value is None:
            entry.pop(field, None)
        else:
            entry[field] = list(value) if isinstance(value, (tuple, list)) else float(value)
    _parse(f"{path}: stands.{key}", entry)  # refuse bad values before writing
    stands[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
