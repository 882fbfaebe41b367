"""Objective profiles: what the software believes about each objective in the turret.

Defaults ship in ``resources/objectives.json``; a lab overrides them per label in a user
file (``$THINKSCOPE_HOME/objectives.json``) after swapping or recalibrating an objective,
so the repository defaults never need editing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "DEFAULT_PROFILES_PATH",
    "ObjectiveProfile",
    "ProfileError",
    "load_profiles",
    "profile_from_label",
    "save_user_profiles",
    "shipped_profile_labels",
    "thinkscope_home",
    "user_profile_labels",
    "user_profiles_path",
]

#: the defaults that ship with the application
DEFAULT_PROFILES_PATH = Path(__file__).resolve().parent.parent / "resources" / "objectives.json"


class ProfileError(ValueError):
    """A profile file is unreadable or holds an invalid value (message names file and field)."""


class ObjectiveProfile(BaseModel):
    """Calibrated description of one objective, keyed by its turret label."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    label: str = Field(min_length=1)
    """Turret state label of the objective, e.g. "40x"; the key everything else uses."""

    magnification: float = Field(gt=0)
    """Nominal magnification (with the tube lens the stand was calibrated with)."""

    na: float = Field(gt=0, le=1.7)
    """Numerical aperture; sets the optical resolution limit (about lambda / 2NA)."""

    immersion: Literal["dry", "oil", "water"] = "dry"
    """Immersion medium; oil objectives force the dry-before-oil ordering of a run."""

    pixel_size_um: float = Field(gt=0)
    """Sample-plane size of one camera pixel in micrometres (camera pitch / magnification)."""

    offset_xy_um: tuple[float, float] = (0.0, 0.0)
    """Calibrated parcentric XY offset (µm) relative to the reference objective (10x)."""

    parfocal_z_um: float = 0.0
    """Calibrated parfocal Z offset (µm) relative to the reference objective (10x)."""

    rotation_deg: float = 0.0
    """Calibrated image rotation (degrees) relative to the reference objective."""

    retired: bool = False
    """True once the objective left the turret; kept so old models still name it."""


#: camera pitch the simulator's defaults assume; only a last resort for a label with no preset
NOMINAL_CAMERA_PITCH_UM = 6.5
#: NA assumed for a dry objective whose label states none (typical of a plan achromat)
_DRY_NA_BY_MAG = ((4, 0.10), (10, 0.25), (20, 0.40), (40, 0.65), (60, 0.85), (100, 0.90))


def _default_na(magnification: float, immersion: str) -> float:
    if immersion == "oil":
        return 1.30 if magnification >= 60 else 1.0
    if immersion == "water":
        return 1.0 if magnification >= 40 else 0.5
    na = _DRY_NA_BY_MAG[0][1]
    for mag, value in _DRY_NA_BY_MAG:
        if magnification >= mag:
            na = value
    return na


def profile_from_label(label: str, pixel_size_um: float | None = None) -> ObjectiveProfile:
    """A first profile for a turret label such as "Nikon 40X Plan Fluor ELWD" or "60x/1.40 Oil".

    Why: a lab's configuration names objectives as the maker does; the stand must work at
    once with sensible values and the lab manager then corrects them in the Objectives
    panel (saved to the user file). Magnification is the number before ``x``; NA is a
    number written as ``/0.95``, ``NA 0.95`` or ``0.95 NA``; immersion is "oil"/"water"
    (also "Oel", "Öl", "W" after the NA) and otherwise dry; the pixel size is the
    configuration's pixel-size preset for that label (``pixel_size_um``). Unnamed turret
    positions ("Objective-2") come out retired, so nothing visits them.
    """
    text = label.strip()
    low = text.lower()
    m = re.search(r"(\d+(?:\.\d+)?)\s*x\b", low) or re.search(r"\bx\s*(\d+(?:\.\d+)?)", low)
    mag = float(m.group(1)) if m and float(m.group(1)) > 0 else 1.0
    immersion: Literal["dry", "oil", "water"] = "dry"
    if re.search(r"\b(oil|oel|öl|oi)\b", low):
        immersion = "oil"
    elif re.search(r"\b(water|w|wi)\b", low):
        immersion = "water"
    na = None
    rest = low[m.end():] if m else low  # a bare decimal after the magnification is the NA
    for pat, where in ((r"/\s*(\d?\.\d+)", low), (r"\bna\s*[=:]?\s*(\d?\.\d+)", low),
                       (r"(\d?\.\d+)\s*na\b", low), (r"(?<![\d.])(\d?\.\d+)(?![\d.])", rest)):
        n = re.search(pat, where)
        if n and 0 < float(n.group(1)) <= 1.7:
            na = float(n.group(1))
            break
    if na is None:
        na = _default_na(mag, immersion)
    ps = pixel_size_um if pixel_size_um and pixel_size_um > 0 else NOMINAL_CAMERA_PITCH_UM / mag
    # Micro-Manager's names for unnamed turret positions ("Objective-2", "State-4"): no lens
    empty = m is None and re.fullmatch(r"(objective|state|position|pos)[-_ ]?\d+", low) is not None
    return ObjectiveProfile(label=label, magnification=mag, na=na, immersion=immersion,
                            pixel_size_um=ps, retired=empty)


def thinkscope_home() -> Path:
    """The app's user folder: ``$THINKSCOPE_HOME`` or ``~/.thinkscope``."""
    env = os.environ.get("THINKSCOPE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".thinkscope"


def user_profiles_path() -> Path:
    """Where the lab's own objective overrides live (may not exist yet)."""
    return thinkscope_home() / "objectives.json"


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProfileError(f"{path}: cannot read objective profiles: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(
            f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: top level must be a JSON object of objective profiles")
    entries = data.get("objectives", data)
    if not isinstance(entries, dict):
        raise ProfileError(f"{path}: field 'objectives' must be an object keyed by label")
    return {k: v for k, v in entries.items() if not str(k).startswith("_")}


def _validate(path: Path, label: str, raw: Any, base: ObjectiveProfile | None) -> ObjectiveProfile:
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: field 'objectives.{label}' must be an object")
    merged: dict[str, Any] = base.model_dump() if base is not None else {}
    merged.update(raw)
    merged.setdefault("label", label)
    if merged["label"] != label:
        raise ProfileError(
            f"{path}: field 'objectives.{label}.label' is {merged['label']!r}; "
            "it must match its key"
        )
    try:
        return ObjectiveProfile.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "?"
        raise ProfileError(f"{path}: field 'objectives.{label}.{where}': {err['msg']}") from e


def _parse(path: Path, base: Mapping[str, ObjectiveProfile]) -> dict[str, ObjectiveProfile]:
    return {
        str(label): _validate(path, str(label), raw, base.get(str(label)))
        for label, raw in _read_json(path).items()
    }


def load_profiles(user_path: Path | None = None) -> dict[str, ObjectiveProfile]:
    """Defaults merged with the user's overrides (user wins, field by field, per label).

    ``user_path=None`` uses :func:`user_profiles_path` and tolerates its absence; a path
    passed explicitly must exist, because a typo there would silently drop a calibration.
    """
    profiles = _parse(DEFAULT_PROFILES_PATH, {})
    if user_path is None:
        path = user_profiles_path()
        if not path.exists():
            return profiles
    else:
        path = Path(user_path).expanduser()
        if not path.exists():
            raise ProfileError(f"{path}: objective profile file does not exist")
    profiles.update(_parse(path, profiles))
    return profiles


def shipped_profile_labels() -> set[str]:
    """Labels of the defaults that ship in resources/ (the simulator's turret)."""
    return set(_read_json(DEFAULT_PROFILES_PATH))


def user_profile_labels(user_path: Path | None = None) -> set[str]:
    """Labels the user's file defines (their values are the lab's, not the shipped defaults)."""
    path = Path(user_path).expanduser() if user_path is not None else user_profiles_path()
    return set(_read_json(path)) if path.exists() else set()


def save_user_profiles(
    profiles: Mapping[str, ObjectiveProfile], path: Path | None = None
) -> Path:
    """Write profiles where :func:`load_profiles` will find them; returns the path written."""
    path = Path(path) if path is not None else user_profiles_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"objectives": {k: p.model_dump(mode="json") for k, p in profiles.items()}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
