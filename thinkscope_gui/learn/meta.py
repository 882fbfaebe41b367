"""Model metadata: everything needed to rebuild, check and trust a model file.

Stored as JSON in the safetensors header so any tool can read it without torch.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hardware.profiles import ObjectiveProfile

FORMAT_NAME = "thinkscope-model"
FORMAT_VERSION = 1
META_KEY = "thinkscope"  #: safetensors header metadata key holding the JSON below


def app_version() -> str:
    """Installed ThinkScope version, or the pyproject default when running from a checkout."""
    try:
        from importlib.metadata import version

        return version("thinkscope")
    except Exception:  # noqa: BLE001 - not installed: running from the source tree
        return "0.1.0"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class Normalisation(BaseModel):
    """x_net = (x / divisor - mean) / std per channel; inputs are scaled by their own range."""

    model_config = ConfigDict(frozen=True)
    divisor: float = 255.0
    mean: list[float] = Field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = Field(default_factory=lambda: [0.25, 0.25, 0.25])


class ModelMeta(BaseModel):
    """JSON header of a model file (see docs/MODELS.md)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    arch: str
    arch_params: dict[str, Any] = Field(default_factory=dict)
    scale: float
    channels: int
    lr_profile: ObjectiveProfile
    hr_profile: ObjectiveProfile
    lr_pixel_size_um: float
    hr_pixel_size_um: float
    bit_depth: int = 8
    normalisation: Normalisation = Field(default_factory=Normalisation)
    data_fingerprint: str = ""
    data_sources: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    epochs: int = 0
    command: str = ""
    train_config: dict[str, Any] = Field(default_factory=dict)
    warm_start_from: str | None = None
    app_version: str = Field(default_factory=app_version)
    created: str = Field(default_factory=now_iso)
