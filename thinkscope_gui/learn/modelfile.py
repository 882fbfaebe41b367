"""Read and write model files: safetensors weights + JSON metadata. Never unpickles."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import ModelFileError
from .meta import FORMAT_NAME, FORMAT_VERSION, META_KEY, MODELS_DIR, ModelMeta
from .models import ARCHS, DEFAULT_PARAMS, build_model, receptive_radius

#: where the shipped default models live
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


#: sane bounds for every number a model file may ask us to build or compute with
SCALE_RANGE = (1.5, 5.0)
CHANNELS_RANGE = (1, 4)
ARCH_PARAM_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "fast": {"feats": (1, 128), "layers": (0, 16)},
    "quality": {"feats": (1, 128), "blocks": (0, 32)},
}
#: weights held in memory at most (float32 bytes); the shipped models use < 1 MB
MAX_WEIGHT_BYTES = 64 << 20
#: activations of one 512 px inference tile at most (float32 bytes, features x 3 copies)
MAX_TILE_ACTIVATION_BYTES = 2 << 30
_FLOAT_DTYPES = {"F32", "F16", "BF16", "F64"}


def check_arch(arch: Any, channels: Any, scale: Any, params: Any,
               where: str = "model") -> dict[str, int]:
    """Bounds on everything that sizes a network, checked before anything is built: a
    hostile or broken file must not make us allocate. Returns the full parameter set."""
    if arch not in ARCHS:
        raise ModelFileError(f"{where}: unknown architecture {arch!r} (expected {ARCHS})")
    if not isinstance(params, dict):
        raise ModelFileError(f"{where}: arch_params must be an object, got {params!r:.80}")
    ranges = ARCH_PARAM_RANGES[arch]
    unknown = sorted(set(params) - set(ranges))
    if unknown:
        raise ModelFileError(f"{where}: unknown {arch} architecture parameters {unknown}")
    full = {**DEFAULT_PARAMS[arch], **params}
    for key, (lo, hi) in ranges.items():
        v = full[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ModelFileError(f"{where}: arch_params.{key} = {v!r:.40} is outside "
                                 f"{lo}..{hi}")
    if isinstance(channels, bool) or not isinstance(channels, int) or \
            not CHANNELS_RANGE[0] <= channels <= CHANNELS_RANGE[1]:
        raise ModelFileError(f"{where}: channels = {channels!r:.40} is outside "
                             f"{CHANNELS_RANGE[0]}..{CHANNELS_RANGE[1]}")
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or \
            not math.isfinite(scale) or not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        raise ModelFileError(f"{where}: scale = {scale!r:.40} is outside "
                             f"{SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g}")
    feats = int(full["feats"])
    depth = int(full.get("layers", 0)) + 2 * int(full.get("blocks", 0)) + 2
    p = math.ceil(scale)
    weights = 4 * (depth * (feats * feats * 9 + feats) + channels * feats * 25
                   + feats * channels * p * p * 16)
    if weights > MAX_WEIGHT_BYTES:
        raise ModelFileError(f"{where}: the network would hold {weights / 2**20:.0f} MB of "
                             f"weights (limit {MAX_WEIGHT_BYTES >> 20} MB)")
    side = 512 + 4 * receptive_radius(arch, full)
    act = 4 * 3 * max(feats, channels * p * p) * side * side
    if act > MAX_TILE_ACTIVATION_BYTES:
        raise ModelFileError(f"{where}: one inference tile would need {act / 2**30:.1f} GB "
                             f"(limit {MAX_TILE_ACTIVATION_BYTES >> 30} GB)")
    return full


def _check_meta_values(path: Path, meta: ModelMeta) -> None:
    """Every metadata field within sane bounds (model file = untrusted input)."""
    check_arch(meta.arch, meta.channels, meta.scale, meta.arch_params, str(path))
    n = meta.normalisation
    c = meta.channels
    for name, values in (("mean", n.mean), ("std", n.std)):
        if len(values) != c:
            raise ModelFileError(f"{path}: normalisation.{name} has {len(values)} values for "
                                 f"{c} channels")
        if not all(math.isfinite(v) for v in values):
            raise ModelFileError(f"{path}: normalisation.{name} is not finite: {values}")
    if not all(1e-6 <= v <= 1e3 for v in n.std):
        raise ModelFileError(f"{path}: normalisation.std must be > 0 (and sane), got {n.std}; "
                             "a zero std turns every image black")
    if not all(-1e3 <= v <= 1e3 for v in n.mean):
        raise ModelFileError(f"{path}: normalisation.mean out of range: {n.mean}")
    if not math.isfinite(n.divisor) or not 0 < n.divisor <= 2**32:
        raise ModelFileError(f"{path}: normalisation.divisor out of range: {n.divisor}")
    for name in ("lr_pixel_size_um", "hr_pixel_size_um"):
        v = getattr(meta, name)
        if not math.isfinite(v) or not 1e-4 <= v <= 1e3:
            raise ModelFileError(f"{path}: {name} = {v} is not a plausible pixel size")


def _expected_shapes(meta: ModelMeta) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of the recorded architecture, built on the meta device (no
    memory): the file's tensors must match them before any weight is read."""
    with torch.device("meta"):
        model = build_model(meta.arch, meta.channels, meta.scale, meta.arch_params)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _read(path: Path, with_tensors: bool,
          check: Any = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            if with_tensors and check is not None:
                check(header, {k: f.get_slice(k) for k in f.keys()})  # noqa: SIM118
            tensors = ({k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
                       if with_tensors else {})
    except ModelFileError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(
            f"{path} is not a readable safetensors model file (truncated or corrupt?): {e}"
        ) from e
    return tensors, header


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the raw header metadata; any decoding problem -> ModelFileError."""
    return _read(Path(path), with_tensors=True)


def _check_tensors(path: Path, meta: ModelMeta, slices: dict[str, Any]) -> None:
    want = _expected_shapes(meta)
    have = {k: tuple(int(d) for d in s.get_shape()) for k, s in slices.items()}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or extra:
        raise ModelFileError(f"{path}: weights do not match the recorded architecture "
                             f"{meta.arch!r} {meta.arch_params}: missing {missing[:5]}, "
                             f"unexpected {extra[:5]}")
    for k, shape in want.items():
        if have[k] != shape:
            raise ModelFileError(f"{path}: tensor {k} has shape {list(have[k])}, the "
                                 f"architecture needs {list(shape)}")
        dtype = slices[k].get_dtype()
        if dtype not in _FLOAT_DTYPES:
            raise ModelFileError(f"{path}: tensor {k} has dtype {dtype}, expected float")


def read_meta(path: str | Path) -> ModelMeta:
    """Only the metadata (cheap: reads the header, not the weights)."""
    path = Path(path)
    return _parse_meta(path, _read(path, with_tensors=False)[1])


def _parse_meta(path: Path, header: dict[str, str]) -> ModelMeta:
    raw = header.get(META_KEY)
    if raw is not None and len(raw) > 4 << 20:
        raise ModelFileError(f"{path}: model metadata is {len(raw) >> 20} MB (limit 4 MB)")
    if raw is None:
        raise ModelFileError(f"{path} is a safetensors file but not a ThinkScope model "
                             f"(no '{META_KEY}' metadata in its header)")
    try:
        data = json.loads(raw)
        meta = ModelMeta.model_validate(data)
    except (json.JSONDecodeError, ValidationError, RecursionError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: invalid ThinkScope model metadata: "
                             f"{str(e)[:500]}") from e
    if meta.format != FORMAT_NAME:
        raise ModelFileError(f"{path}: unknown model format {meta.format!r}")
    if meta.format_version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {meta.format_version} is newer than "
                             f"this ThinkScope reads ({FORMAT_VERSION}); update ThinkScope")
    _check_meta_values(path, meta)
    return meta


def load_model(path: str | Path) -> tuple[torch.nn.Module, ModelMeta]:
    """Rebuild the network from its metadata and load the weights (strict)."""
    path = Path(path)
    parsed: list[ModelMeta] = []

    def check(header: dict[str, str], slices: dict[str, Any]) -> None:
        parsed.append(_parse_meta(path, header))  # bounds first, then shapes, then weights
        _check_tensors(path, parsed[0], slices)

    tensors, header = _read(path, with_tensors=True, check=check)
    meta = parsed[0]
    try:
        model = build_model(meta.arch, meta.channels, meta.scale, meta.arch_params)
        model.load_state_dict(tensors, strict=True)
        bad = [k for k, t in tensors.items() if not bool(torch.isfinite(t).all())]
        if bad:
            raise ModelFileError(f"{path}: weights hold NaN or infinite values ({bad[:3]})")
    except ModelFileError:
        raise
    except (ValueError, RuntimeError, TypeError) as e:
        raise ModelFileError(f"{path}: weights do not match the recorded architecture "
                             f"{meta.arch!r} {meta.arch_params}: {e}") from e
    return model.eval(), meta
