"""Read and write model files: safetensors weights + JSON metadata. Never unpickles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import ModelFileError
from .meta import FORMAT_NAME, FORMAT_VERSION, META_KEY, ModelMeta
from .models import build_model

#: where the shipped default models live
MODELS_DIR = Path(__file__).resolve().parents[2] / "resources" / "models"
DEFAULT_MODELS = {"fast": MODELS_DIR / "default_fast.safetensors",
                  "quality": MODELS_DIR / "default_quality.safetensors"}


def _atomic_save(tensors: dict[str, torch.Tensor], header: dict[str, str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata=header)
    os.chmod(tmp, 0o644)  # shareable like any other file (safetensors writes 0600)
    os.replace(tmp, path)  # why: a crash mid-write never leaves a half model behind


def save_model(model: torch.nn.Module, meta: ModelMeta, path: str | Path) -> Path:
    """Write weights (float32) and metadata atomically."""
    path = Path(path)
    state = {k: v.float() for k, v in model.state_dict().items()}
    _atomic_save(state, {META_KEY: meta.model_dump_json(), "format": "pt"}, path)
    return path


def _read(path: Path, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = ({k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
                       if with_tensors else {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(
            f"{path} is not a readable safetensors model file (truncated or corrupt?): {e}"
        ) from e
    return tensors, header


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the raw header metadata; any decoding problem -> ModelFileError."""
    return _read(Path(path), with_tensors=True)


def read_meta(path: str | Path) -> ModelMeta:
    """Only the metadata (cheap: reads the header, not the weights)."""
    path = Path(path)
    return _parse_meta(path, _read(path, with_tensors=False)[1])


def _parse_meta(path: Path, header: dict[str, str]) -> ModelMeta:
    raw = header.get(META_KEY)
    if raw is None:
        raise ModelFileError(f"{path} is a safetensors file but not a ThinkScope model "
                             f"(no '{META_KEY}' metadata in its header)")
    try:
        data = json.loads(raw)
        meta = ModelMeta.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as e:
        raise ModelFileError(f"{path}: invalid ThinkScope model metadata: {e}") from e
    if meta.format != FORMAT_NAME:
        raise ModelFileError(f"{path}: unknown model format {meta.format!r}")
    if meta.format_version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {meta.format_version} is newer than "
                             f"this ThinkScope reads ({FORMAT_VERSION}); update ThinkScope")
    return meta


def load_model(path: str | Path) -> tuple[torch.nn.Module, ModelMeta]:
    """Rebuild the network from its metadata and load the weights (strict)."""
    path = Path(path)
    tensors, header = read_tensors(path)
    meta = _parse_meta(path, header)
    try:
        model = build_model(meta.arch, meta.channels, meta.scale, meta.arch_params)
        model.load_state_dict(tensors, strict=True)
    except (ValueError, RuntimeError, TypeError) as e:
        raise ModelFileError(f"{path}: weights do not match the recorded architecture "
                             f"{meta.arch!r} {meta.arch_params}: {e}") from e
    return model.eval(), meta
