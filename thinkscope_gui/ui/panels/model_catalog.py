"""Find model files and judge them against the current objective profiles (no Qt)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.profiles import thinkscope_home
from thinkscope_gui.learn.meta import MODELS_DIR


def model_dirs() -> list[Path]:
    """Shipped models first, then the user's ($THINKSCOPE_HOME/models)."""
    return [MODELS_DIR, thinkscope_home() / "models"]


@dataclass(frozen=True)
class ModelEntry:
    """One model file with the metadata the Models panel shows."""

    path: Path
    meta: Any  # learn.meta.ModelMeta, or None when unreadable
    error: str = ""

    @property
    def objectives(self) -> str:
        if self.meta is None:
            return "?"
        return f"{self.meta.lr_profile.label} → {self.meta.hr_profile.label}"


def read_model_meta(path: Path) -> Any:
    """Metadata without loading weights (learn.modelfile.read_meta never unpickles)."""
    from thinkscope_gui.learn.modelfile import read_meta

    return read_meta(path)


def scan_models(dirs: list[Path] | None = None) -> list[ModelEntry]:
    entries: list[ModelEntry] = []
    for folder in dirs or model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.safetensors")):
            if path.name.endswith(".ckpt.safetensors"):
                continue  # training checkpoints, not models
            try:
                entries.append(ModelEntry(path, read_model_meta(path)))
            except Exception as exc:  # noqa: BLE001 - list it, with the reason
                entries.append(ModelEntry(path, None, f"{type(exc).__name__}: {exc}"))
    return entries


def staleness(meta: Any, profiles: dict[str, Any]) -> str:
    """Why a model no longer fits the turret ('' if it still does).

    A model is stale when an objective it was trained for was retired, removed, or
    replaced by one with different optics (magnification, NA, immersion or pixel size).
    """
    if meta is None:
        return "unreadable"
    for role, trained in (("input", meta.lr_profile), ("target", meta.hr_profile)):
        now = profiles.get(trained.label)
        if now is None:
            return f"{role} objective {trained.label} not installed"
        if now.retired:
            return f"{role} objective {trained.label} retired"
        if (now.magnification != trained.magnification or abs(now.na - trained.na) > 1e-6
                or now.immersion != trained.immersion
                or abs(now.pixel_size_um / trained.pixel_size_um - 1) > 0.02):
            return f"{role} objective {trained.label} replaced"
    return ""


def metrics_text(meta: Any) -> str:
    if meta is None or not meta.metrics:
        return ""
    keys = sorted(meta.metrics)
    return ", ".join(f"{k} {meta.metrics[k]:.3g}" for k in keys[:4])


def data_text(meta: Any) -> str:
    if meta is None:
        return ""
    sources = [Path(s).name for s in meta.data_sources]
    return ", ".join(sources) or json.dumps(meta.data_fingerprint[:12])
