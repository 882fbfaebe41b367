"""Model metadata: everything needed to rebuild, check and trust a model file.

Stored as JSON in the safetensors header so any tool can read it without torch.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hardware.profiles import ObjectiveProfile

#: THE one place the shipped models live (resources/models); the user's are in
#: $THINKSCOPE_HOME/models. Here, not in modelfile.py, so the GUI finds them without torch.
MODELS_DIR = Path(__file__).resolve().parents[2] / "resources" / "models"

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

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    divisor: float = Field(255.0, gt=0)
    """Full-scale value of the input dtype (2**bit_depth - 1); maps pixels to [0, 1]."""
    mean: list[float] = Field(default_factory=lambda: [0.5, 0.5, 0.5])
    """Per-channel mean of the [0, 1] training data."""
    std: list[float] = Field(default_factory=lambda: [0.25, 0.25, 0.25])
    """Per-channel standard deviation of the [0, 1] training data (all > 0)."""


class ModelMeta(BaseModel):
    """JSON header of a model file (see docs/MODELS.md)."""

    model_config = ConfigDict(frozen=True, extra="allow", use_attribute_docstrings=True)

    format: str = FORMAT_NAME
    """File format name; anything else is not a ThinkScope model."""
    format_version: int = FORMAT_VERSION
    """Version of this header layout; newer versions are refused with a clear message."""
    arch: str
    """Architecture name ("fast" or "quality") used to rebuild the network."""
    arch_params: dict[str, Any] = Field(default_factory=dict)
    """Architecture hyper-parameters needed to rebuild the network exactly."""
    scale: float = Field(gt=0)
    """Output/input sampling ratio: LR pixel size / HR pixel size (2.5 for 40x -> 100x)."""
    channels: int = Field(ge=1)
    """Colour channels in and out (3 for RGB)."""
    lr_profile: ObjectiveProfile
    """Objective the model takes images from (input)."""
    hr_profile: ObjectiveProfile
    """Objective the model imitates (output)."""
    lr_pixel_size_um: float = Field(gt=0)
    """Input sample-plane pixel size in µm at training time."""
    hr_pixel_size_um: float = Field(gt=0)
    """Output sample-plane pixel size in µm at training time."""
    bit_depth: int = Field(8, ge=1, le=16)
    """Bit depth of the training frames (sets the normalisation divisor)."""
    normalisation: Normalisation = Field(default_factory=Normalisation)
    """How pixels map into network space and back."""
    data_fingerprint: str = ""
    """SHA-256 over the training data sources, to tell which data a model saw."""
    data_sources: list[str] = Field(default_factory=list)
    """Names of the training data sources (stores, folders, simulator recipes)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Validation metrics of the saved weights (PSNR/SSIM of model and bicubic)."""
    epochs: int = Field(0, ge=0)
    """Epochs trained when these weights were saved."""
    command: str = ""
    """Command that produced the model (provenance)."""
    train_config: dict[str, Any] = Field(default_factory=dict)
    """The full TrainConfig of the run, as a dict."""
    warm_start_from: str | None = None
    """Model file the run started from, if it was a warm start."""
    app_version: str = Field(default_factory=app_version)
    """ThinkScope version that wrote the file."""
    created: str = Field(default_factory=now_iso)
    """UTC creation time, ISO 8601."""
