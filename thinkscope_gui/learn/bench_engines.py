"""`main.py bench engines`: inference engines for the shipped models, measured rather than
assumed (issue 12).

Per model and frame size: torch eager on the bare network, the full ``Enhancer.enhance``
path (conversions included), channels-last, bf16 autocast (CPU with AVX512-BF16/AMX) or
fp16 (CUDA), ``torch.compile``, and ONNX Runtime / OpenVINO when they are installed (they
are optional; nothing here installs them). Rounds are interleaved and the median taken, so
a machine shared with other work loads every engine alike. Each engine's output is compared
with eager's on [0, 1]: an engine is only worth adopting at >= 1.5x the speed with a max
abs difference < 1e-3.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .engines import ENGINE_ENV
from .infer import Enhancer

ADOPT_SPEEDUP = 1.5
ADOPT_MAX_DIFF = 1e-3


def _time(fn: Callable[[], Any], reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def _engines(enh: Enhancer, x: torch.Tensor, compile_: bool) -> dict[str, Callable[[], Any]]:
    """name -> a call that runs the network on ``x`` (network space, (1, C, H, W))."""
    model = enh.model
    cuda = enh.device.startswith("cuda")
    out: dict[str, Callable[[], Any]] = {}

    @torch.inference_mode()
    def eager() -> torch.Tensor:
        return model(x)

    out["eager"] = eager
    xc = x.contiguous(memory_format=torch.channels_last)
    # (torch's stubs omit Module.to's memory_format keyword)
    model_cl = copy.deepcopy(model).to(  # type: ignore[call-overload]
        memory_format=torch.channels_last)

    @torch.inference_mode()
    def channels_last() -> torch.Tensor:
        return model_cl(xc)

    out["channels_last"] = channels_last
    low = torch.float16 if cuda else torch.bfloat16
    if cuda or _cpu_has_bf16():
        @torch.inference_mode()
        def autocast() -> torch.Tensor:
            with torch.autocast(enh.device.split(":")[0], dtype=low):
                return model(x).float()

        out["fp16_autocast" if cuda else "bf16_autocast"] = autocast
    if compile_:
        compiled = torch.compile(model)

        @torch.inference_mode()
        def comp() -> torch.Tensor:
            return compiled(x)

        out["torch_compile"] = comp
    return out


@contextlib.contextmanager
def _engine_env(value: str) -> Iterator[None]:
    """Enhancer's engine choice for one call (learn/engines.ENGINE_ENV)."""
    old = os.environ.get(ENGINE_ENV)
    os.environ[ENGINE_ENV] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENGINE_ENV, None)
        else:
            os.environ[ENGINE_ENV] = old


def _cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()  # noqa: SIM115 - tiny read, Linux only
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def optional_engines() -> dict[str, bool]:
    """Which optional engines are importable (``pip install .[engines]``)."""
    return {name: importlib.util.find_spec(name) is not None
            for name in ("onnxruntime", "openvino", "onnxscript")}


def _dims() -> tuple[dict[int, Any], ...]:
    from torch.export import Dim

    return ({2: Dim("h", min=16, max=4096), 3: Dim("w", min=16, max=4096)},)


def export_onnx(model: torch.nn.Module, x: torch.Tensor, dynamo: bool,
                dynamic: bool = False) -> bytes:
    """The network as ONNX for ``x``'s shape (``dynamic``: any H and W). ``dynamo``:
    torch's dynamo exporter (needs onnxscript), else the TorchScript one."""
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(model, (x,), None, dynamo=True,
                                     dynamic_shapes=_dims() if dynamic else None,
                                     input_names=["x"], output_names=["y"],
                                     optimize=True, verbose=False)
            assert prog is not None
            return prog.model_proto.SerializeToString()
        # (the stubs say a path; onnx.export writes to a file object too)
        torch.onnx.export(model, (x,), buf, dynamo=False,  # type: ignore[arg-type]
                          input_names=["x"], output_names=["y"],
                          dynamic_axes=({"x": {2: "h", 3: "w"}, "y": {2: "H", 3: "W"}}
                                        if dynamic else None))
    return buf.getvalue()


def dynamic_export_error(model: torch.nn.Module, x: torch.Tensor) -> str:
    """Why a dynamic-H/W export fails ("" when it works): the networks round their
    output size (round(2.5 H)), which torch.export specialises to the example's size."""
    try:
        torch.export.export(model, (x,), dynamic_shapes=_dims())
    except Exception as exc:  # noqa: BLE001 - the reason is the figure
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return ""


class OnnxEngines:
    """ONNX Runtime and OpenVINO sessions for one model at ``x``'s shape (static: see
    :func:`dynamic_export_error`); build failures are recorded, not raised."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, threads: int,
                 log: Callable[[str], None] = print) -> None:
        self.sessions: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        self.errors: dict[str, str] = {}
        self.build_s: dict[str, float] = {}
        have = optional_engines()
        blobs: dict[str, bytes] = {}
        for dynamo in (False, True):
            key = "dynamo" if dynamo else "torchscript"
            if dynamo and not have["onnxscript"]:
                self.errors[f"onnx {key} export"] = "onnxscript is not installed"
                continue
            t0 = time.perf_counter()
            try:
                blobs[key] = export_onnx(model, x, dynamo)
                self.build_s[f"onnx {key} export"] = round(time.perf_counter() - t0, 1)
            except Exception as exc:  # noqa: BLE001 - an exporter failure is a finding
                self.errors[f"onnx {key} export"] = f"{type(exc).__name__}: {exc}"[:300]
        if have["onnxruntime"]:
            import onnxruntime as ort

            for key, blob in blobs.items():
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = int(threads)
                opts.inter_op_num_threads = 1
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                try:
                    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
                except Exception as exc:  # noqa: BLE001
                    self.errors[f"onnxruntime ({key})"] = f"{type(exc).__name__}: {exc}"[:300]
                    continue
                self.sessions[f"onnxruntime ({key} export)"] = _ort_call(sess)
        if have["openvino"]:
            import openvino as ov

            core = ov.Core()
            caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            precisions = ["f32"] + (["bf16"] if "BF16" in caps else [])
            sources: dict[str, Any] = {}
            try:  # torch.export (the tracing front end fails on the model's size rounding)
                sources["torch.export"] = ov.convert_model(torch.export.export(model, (x,)))
            except Exception as exc:  # noqa: BLE001
                self.errors["openvino convert (torch.export)"] = (
                    f"{type(exc).__name__}: {exc}"[:300])
            for key, blob in blobs.items():
                try:
                    sources[f"onnx {key}"] = core.read_model(blob, b"")
                except Exception as exc:  # noqa: BLE001
                    self.errors[f"openvino read (onnx {key})"] = (
                        f"{type(exc).__name__}: {exc}"[:300])
            for src, ov_model in sources.items():
                for prec in precisions:
                    try:
                        comp = core.compile_model(ov_model, "CPU", {
                            "INFERENCE_NUM_THREADS": int(threads),
                            "INFERENCE_PRECISION_HINT": prec,
                            "PERFORMANCE_HINT": "LATENCY"})
                    except Exception as exc:  # noqa: BLE001
                        self.errors[f"openvino {prec} ({src})"] = (
                            f"{type(exc).__name__}: {exc}"[:300])
                        continue
                    req = comp.create_infer_request()
                    self.sessions[f"openvino {prec} (from {src})"] = _ov_call(req)
        for key, err in self.errors.items():
            log(f"engine {key} failed: {err}")

    def calls(self, x: torch.Tensor) -> dict[str, Callable[[], Any]]:
        """name -> a call that runs the engine on ``x`` (CPU, network space)."""
        a = np.ascontiguousarray(x.numpy())

        def bind(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[], torch.Tensor]:
            return lambda: torch.from_numpy(np.asarray(fn(a)))

        return {k: bind(fn) for k, fn in self.sessions.items()}


def _ort_call(sess: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: sess.run(None, {"x": a})[0]


def _ov_call(req: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: req.infer({0: a})[0]


def bench_engines(models: tuple[str, ...] = ("fast", "quality"),
                  sizes: tuple[int, ...] = (256, 512, 1024), device: str | None = None,
                  threads: int = 2, rounds: int = 5, compile_: bool = True,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Medians of ``rounds`` interleaved timings (fps) per model, size and engine, with
    each engine's max abs difference from eager on [0, 1] and whether it would be adopted."""
    torch.set_num_threads(int(threads))
    have = optional_engines()
    figures: dict[str, Any] = {"threads": threads, "device": device or "auto", **have}
    if not (have["onnxruntime"] or have["openvino"]):
        log("engines: ONNX Runtime and OpenVINO are not installed (pip install "
            "'.[engines]' or `make bench-engines`); measuring torch only")
    rng = np.random.default_rng(0)
    for name in models:
        enh = Enhancer.load(name, device=device)
        cuda = enh.device.startswith("cuda")
        for n in sizes:
            frame = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
            x = torch.from_numpy(frame.astype(np.float32) / 255).permute(2, 0, 1)[None]
            norm = enh.meta.normalisation
            m = torch.tensor(norm.mean).view(1, -1, 1, 1)
            s = torch.tensor(norm.std).view(1, -1, 1, 1)
            x = ((x - m) / s).contiguous().to(enh.device)
            if cuda:
                enh.model = enh.model.float()
            engines = _engines(enh, x, compile_ and n <= 512)
            if not cuda and (have["onnxruntime"] or have["openvino"]):
                if f"{name} dynamic H/W export" not in figures:
                    err = dynamic_export_error(enh.model, x)
                    figures[f"{name} dynamic H/W export"] = err or "works"
                    log(f"engine {name}: dynamic H/W export: {err or 'works'}; "
                        "exporting per size")
                onnx = OnnxEngines(enh.model, x, threads, log)
                figures.update({f"{name} {n}² {k} s": v for k, v in onnx.build_s.items()})
                figures.update({f"{name} {n}² {k} error": v for k, v in onnx.errors.items()})
                engines.update(onnx.calls(x))

            def full(frame: np.ndarray = frame, enh: Enhancer = enh) -> Any:
                with _engine_env("torch"):
                    return enh.enhance(frame)

            engines["Enhancer.enhance"] = full
            eng = enh.engine(n, n)
            if not isinstance(eng, str):  # the adopted path: Enhancer with its engine

                def full_engine(frame: np.ndarray = frame, enh: Enhancer = enh) -> Any:
                    with _engine_env("auto"):
                        return enh.enhance(frame)

                engines["Enhancer.enhance (openvino)"] = full_engine
            else:
                figures[f"{name} {n}² Enhancer engine"] = f"torch ({eng})"
            ref = (engines["eager"]() * s.to(x.device) + m.to(x.device)).clamp(0, 1).float()
            diffs: dict[str, float] = {}
            for key, fn in list(engines.items()):
                if key.startswith("Enhancer.enhance"):  # on the float frame (no 8-bit steps)
                    with _engine_env("auto" if "openvino" in key else "torch"):
                        y01 = enh.enhance(frame.astype(np.float32) / 255)
                    y = torch.from_numpy(y01).permute(2, 0, 1)[None]
                    diffs[key] = float((y.to(ref.device) - ref).abs().max())
                    fn()  # warm-up on the timed uint8 frame (and the engine's build)
                    continue
                t0 = time.perf_counter()
                try:
                    y = fn()  # warm-up (and compile)
                except Exception as exc:  # noqa: BLE001 - an engine that fails is a figure
                    figures[f"{name} {n}² {key} error"] = f"{type(exc).__name__}: {exc}"[:300]
                    log(f"engine {name} {n}² {key} failed: {exc}")
                    del engines[key]
                    continue
                figures.setdefault("warmup_s", {})[f"{name} {n} {key}"] = round(
                    time.perf_counter() - t0, 1)
                y = (y.float() * s.to(y.device) + m.to(y.device)).clamp(0, 1)
                diffs[key] = float((y - ref).abs().max())
            reps = max(1, int(2 * (256 / n) ** 2))
            times: dict[str, list[float]] = {k: [] for k in engines}
            for _ in range(rounds):
                for key, fn in engines.items():
                    times[key].append(_time(fn, reps))
                    if cuda:
                        torch.cuda.synchronize()
            base = float(np.median(times["eager"]))
            for key in engines:
                t = float(np.median(times[key]))
                speed = base / t
                row = {"fps": round(1.0 / t, 2), "vs_eager": round(speed, 2),
                       "max_abs_diff": float(f"{diffs[key]:.2e}"),
                       "adopt": bool(key != "eager" and not key.startswith("Enhancer")
                                     and speed >= ADOPT_SPEEDUP
                                     and diffs[key] < ADOPT_MAX_DIFF)}
                figures[f"{name} {n}² {key}"] = row
                log(f"engine {name} {n}² {key}: {row['fps']} fps, x{row['vs_eager']} vs eager, "
                    f"max diff {row['max_abs_diff']}, adopt {row['adopt']}")
    return figures
