"""OpenVINO behind :class:`~thinkscope_gui.learn.infer.Enhancer`, for the models where it
was measured to pay (issue 12): the quality (stills) model, 2.0-2.3x torch eager on 2 CPU
threads with a max difference < 1e-4 on [0, 1]. The fast (live) model stays on torch (no
engine reached 1.5x). The model file stays safetensors: the network is exported here, once
per process, from the torch module loaded from it.

Why one fixed tile shape: the networks round their output size (round(2.5 H)), so a
dynamic-H/W export fails, and compiling one shape per frame size would cost seconds per
new size. Every tile is padded to the one compiled shape instead, and the padding must not
change a single output pixel. Plain padding would (edges differ by up to 0.1): eager's
convolutions see zeros past the frame edge and its sub-pixel layer and bicubic skip see the
edge row repeated. So the exported graph takes the valid region as inputs and reproduces
both: each zero-padded convolution's input is multiplied by a 0/1 mask, and the features
entering the sub-pixel layer are gathered with clamped indices (edge repeated); the input
image is edge-padded for the bicubic skip. The result matches eager to float rounding; a
built engine is checked against eager on an odd-sized region before it is used, and any
failure falls back to torch with a one-line reason.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import SubPixelUp, out_size

log = logging.getLogger(__name__)

#: architectures run through OpenVINO when it is installed (measured by `bench engines`:
#: quality 2.0-2.3x eager; fast 0.8-0.95x, so it stays on torch)
ENGINE_ARCHS = ("quality",)
#: ``THINKSCOPE_ENGINE=torch`` forces torch (e.g. to compare); unset or ``auto``: OpenVINO
#: where installed and measured to pay
ENGINE_ENV = "THINKSCOPE_ENGINE"
#: max abs difference from eager on [0, 1] that an engine must meet (the adoption rule)
MAX_DIFF = 1e-3
#: bump when _PaddedTile changes: cached converted networks of older versions are not read
IR_VERSION = 2


def openvino_available() -> bool:
    """OpenVINO and the ONNX exporter the engine is built with (the ``engines`` extra)."""
    return all(importlib.util.find_spec(m) is not None for m in ("openvino", "onnxscript"))


class _PaddedTile(nn.Module):
    """The network on a tile padded past its valid region, with eager's edge behaviour at
    the valid region's edge: forward(x, mask, iy, ix) where x is the edge-padded tile,
    mask is 1 inside the valid region, and iy/ix map every row/column to itself clamped
    into the valid region."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(model).eval()
        ups = [m for m in self.net.modules() if isinstance(m, SubPixelUp)]
        if len(ups) != 1:
            raise ValueError(f"expected one SubPixelUp, found {len(ups)}")
        skip = {id(ups[0].conv)}
        self._io: dict[str, torch.Tensor] = {}
        for m in self.net.modules():
            if not isinstance(m, nn.Conv2d) or id(m) in skip:
                continue
            pad = m.padding if isinstance(m.padding, tuple) else (m.padding,)
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise ValueError(f"unsupported convolution padding {m.padding!r}/{m.padding_mode}")
            if any(int(p) > 0 for p in pad):
                m.register_forward_pre_hook(self._mask_input)
        ups[0].register_forward_pre_hook(self._extend_edges)

    def _mask_input(self, _m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0] * self._io["mask"], *args[1:])

    def _extend_edges(self, _m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        f = args[0].index_select(2, self._io["iy"]).index_select(3, self._io["ix"])
        return (f, *args[1:])

    def forward(self, x: torch.Tensor, mask: torch.Tensor, iy: torch.Tensor,
                ix: torch.Tensor) -> torch.Tensor:
        self._io = {"mask": mask, "iy": iy, "ix": ix}
        try:
            return self.net(x)
        finally:
            self._io = {}


def _tile_inputs(x: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """(h, w, C) network-space tile -> the padded engine inputs (x, mask, iy, ix)."""
    h, w, c = x.shape
    sh, sw = shape
    xp = np.pad(x, ((0, sh - h), (0, sw - w), (0, 0)), mode="edge")
    mask = np.zeros((1, 1, sh, sw), np.float32)
    mask[..., :h, :w] = 1.0
    iy = np.minimum(np.arange(sh), h - 1).astype(np.int64)
    ix = np.minimum(np.arange(sw), w - 1).astype(np.int64)
    return [np.ascontiguousarray(xp.transpose(2, 0, 1)[None]), mask, iy, ix]


def cache_dir() -> Path:
    """``$THINKSCOPE_HOME/cache/openvino`` (``~/.thinkscope/...``): converted networks, so a
    new process (each `main.py enhance`) skips the export (seconds on 2 threads)."""
    env = os.environ.get("THINKSCOPE_HOME")
    home = Path(env).expanduser() if env else Path.home() / ".thinkscope"
    return home / "cache" / "openvino"


def _ir_path(model_file: Path, shape: tuple[int, int]) -> Path:
    """The cached network for this model file's content and tile shape."""
    import openvino as ov

    digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:20]
    ver = ov.get_version().split("-")[0]
    return cache_dir() / f"{digest}-{shape[0]}x{shape[1]}-v{IR_VERSION}-ov{ver}.xml"


def _convert(model: nn.Module, channels: int, shape: tuple[int, int]) -> Any:
    """The padded-tile network as an OpenVINO model, through torch's ONNX (dynamo) export.
    Why not ``ov.convert_model`` on a ``torch.export`` program: measured on the quality
    model at 328² on 2 threads, that graph (pixel shuffle and edge pads decomposed into
    reshapes, transposes and gathers) ran no faster than torch (4.8 s vs 4.5 s under load),
    the ONNX one (DepthToSpace, Pad) in 2.7 s."""
    import openvino as ov

    wrapped = _PaddedTile(model)
    example = tuple(torch.from_numpy(a) for a in
                    _tile_inputs(np.zeros((*shape, channels), np.float32), shape))
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..." x4
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own deprecations inside the exporter
            prog = torch.onnx.export(wrapped, example, None, dynamo=True, optimize=True,
                                     input_names=["x", "mask", "iy", "ix"],
                                     output_names=["y"], verbose=False)
    finally:
        quiet.setLevel(level)
    if prog is None:
        raise RuntimeError("the ONNX export returned nothing")
    return ov.Core().read_model(prog.model_proto.SerializeToString(), b"")


def _save_ir(ov_model: Any, ir: Path) -> None:
    """Write the network (.xml + .bin) atomically; a cache that cannot be written is
    only slower next time."""
    import openvino as ov

    try:
        ir.parent.mkdir(parents=True, exist_ok=True)
        tmp = ir.with_name(f".{os.getpid()}-{ir.name}")
        ov.save_model(ov_model, tmp, compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), ir.with_suffix(".bin"))
        os.replace(tmp, ir)
    except OSError as exc:
        log.info("enhance engine: could not cache the converted network: %s", exc)


class OpenVinoTile:
    """One compiled model for one (tile shape, threads): runs any (h, w, C) tile with
    h <= shape[0], w <= shape[1] and returns eager's (round(h s), round(w s), C) output
    (network space, before de-normalisation). ``ir``: a converted network to read instead
    of exporting ``model`` (None: export; the caller checks the result against eager)."""

    def __init__(self, model: nn.Module, channels: int, scale: float,
                 shape: tuple[int, int], threads: int, ir: Path | None = None) -> None:
        import openvino as ov

        self.shape, self.threads, self.scale = shape, int(threads), float(scale)
        core = ov.Core()
        ov_model = core.read_model(ir) if ir is not None else _convert(model, channels, shape)
        self.ov_model = ov_model
        self.source = "cache" if ir is not None else "export"
        self._compiled = core.compile_model(ov_model, "CPU", {
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "f32",   # bf16 missed the 1e-3 rule (6.5e-3)
            "PERFORMANCE_HINT": "LATENCY"})
        self._req = self._compiled.create_infer_request()
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        if h > self.shape[0] or w > self.shape[1]:
            raise ValueError(f"tile {h}x{w} exceeds the compiled {self.shape}")
        with self._lock:
            y = self._req.infer(_tile_inputs(x.astype(np.float32, copy=False),
                                             self.shape))[0]
        oh, ow = out_size(h, w, self.scale)
        return np.ascontiguousarray(y[0, :, :oh, :ow].transpose(1, 2, 0))


_CACHE: dict[tuple[Any, ...], OpenVinoTile | str] = {}
_CACHE_LOCK = threading.Lock()
_NOTED: set[str] = set()


def note(reason: str) -> None:
    """Log once per process why torch runs a model (one line, not one per frame)."""
    if reason not in _NOTED:
        _NOTED.add(reason)
        log.info("enhance engine: torch (%s)", reason)


def engine_for(model: nn.Module, arch: str, path: Path | None, channels: int, scale: float,
               exact: bool, shape: tuple[int, int], threads: int,
               device: str = "cpu") -> OpenVinoTile | str:
    """The compiled OpenVINO tile engine for this model file, tile shape and thread count
    (built once per process and cached), or a one-line reason why torch is used."""
    if os.environ.get(ENGINE_ENV, "auto").lower() == "torch":
        return f"{ENGINE_ENV}=torch"
    if not device.startswith("cpu"):
        return f"device {device} (OpenVINO is used on CPU only)"
    if arch not in ENGINE_ARCHS:
        return f"the {arch} model is faster on torch (bench engines)"
    if path is None:
        return "model not loaded from a file"
    if not exact:
        return f"scale {scale:g} is not a small fraction (tiles carry a sub-pixel phase)"
    if importlib.util.find_spec("openvino") is None:
        return "openvino is not installed (pip install '.[engines]')"
    if importlib.util.find_spec("onnxscript") is None:
        return "onnxscript is not installed (pip install '.[engines]')"
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size, tuple(shape), int(threads))
    with _CACHE_LOCK:
        got = _CACHE.get(key)
        if got is None:
            got = _build(model, Path(path), channels, scale, shape, threads)
            _CACHE[key] = got
            if isinstance(got, str):
                log.warning("enhance engine: torch, because the OpenVINO build failed: %s", got)
    return got


def _build(model: nn.Module, path: Path, channels: int, scale: float,
           shape: tuple[int, int], threads: int) -> OpenVinoTile | str:
    """Read the converted network from the disk cache, or export it (and cache it); either
    way check it against eager before use."""
    try:
        ir = _ir_path(path, shape)
        if ir.is_file() and ir.with_suffix(".bin").is_file():
            try:
                eng = OpenVinoTile(model, channels, scale, shape, threads, ir=ir)
                why = _check(eng, model, channels, shape)
                if not why:
                    return eng
                log.info("enhance engine: cached %s rejected (%s); exporting again", ir, why)
            except Exception as exc:  # noqa: BLE001 - a bad cache entry: export afresh
                log.info("enhance engine: cached %s unreadable (%s); exporting again", ir, exc)
        eng = OpenVinoTile(model, channels, scale, shape, threads)
        why = _check(eng, model, channels, shape)
        if why:
            return why
        _save_ir(eng.ov_model, ir)
        return eng
    except Exception as exc:  # noqa: BLE001 - any build failure means torch, with the reason
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def _check(eng: OpenVinoTile, model: nn.Module, channels: int, shape: tuple[int, int]) -> str:
    """"" when the engine equals eager on an odd region padded into the tile (padding must
    change nothing), else why not. A small region: eager on a whole tile would cost a third
    of what the engine saves on a 1024² still."""
    h, w = min(shape[0], 61), min(shape[1], 43)
    x = np.random.default_rng(0).standard_normal((h, w, channels)).astype(np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0]
    diff = float(np.abs(eng(x) - ref.permute(1, 2, 0).numpy()).max())
    return "" if diff < MAX_DIFF else f"the compiled model differs from torch by {diff:.2e}"
