"""One place that decides where the GUI keeps its QSettings, so tests can redirect it."""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtCore import QSettings

from hardware.profiles import thinkscope_home

__all__ = ["app_settings", "read_bool", "read_float", "thinkscope_home"]

ORG_NAME = "ThinkScope"
APP_NAME = "ThinkScope"
#: environment variable that points settings at a folder (tests use a temp dir)
SETTINGS_DIR_ENV = "THINKSCOPE_SETTINGS_DIR"


def app_settings() -> QSettings:
    """Settings in $THINKSCOPE_SETTINGS_DIR/thinkscope.ini if set, else the native store."""
    folder = os.environ.get(SETTINGS_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / "thinkscope.ini"), QSettings.Format.IniFormat)
    return QSettings(ORG_NAME, APP_NAME)


def read_float(settings: QSettings, key: str, default: float) -> float:
    """QSettings returns strings from INI files; coerce safely."""
    try:
        return float(settings.value(key, default))
    except (TypeError, ValueError):
        return default


def read_bool(settings: QSettings, key: str, default: bool) -> bool:
    """INI files store booleans as 'true'/'false' strings."""
    value = settings.value(key, default)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)
