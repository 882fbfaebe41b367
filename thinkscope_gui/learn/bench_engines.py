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

import copy
import importlib.util
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

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


def _cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()  # noqa: SIM115 - tiny read, Linux only
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _onnx_engines(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """ONNX Runtime and OpenVINO, only when installed (optional extras)."""
    out: dict[str, Callable[[], Any]] = {}
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    have_ov = importlib.util.find_spec("openvino") is not None
    if not (have_ort or have_ov):
        return out
    import io

    buf = io.BytesIO()
    # (the stubs say a path; onnx.export writes to a file object too)
    torch.onnx.export(model, (x,), buf,  # type: ignore[arg-type]
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "H", 3: "W"}})
    blob = buf.getvalue()
    xn = x.numpy()
    if have_ort:
        import onnxruntime as ort

        sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        out["onnxruntime"] = lambda: torch.from_numpy(sess.run(None, {"x": xn})[0])
    if have_ov:
        import openvino as ov

        compiled = ov.Core().compile_model(ov.Core().read_model(blob), "CPU")
        out["openvino"] = lambda: torch.from_numpy(compiled(xn)[0])
    return out


def bench_engines(models: tuple[str, ...] = ("fast", "quality"),
                  sizes: tuple[int, ...] = (256, 512, 1024), device: str | None = None,
                  threads: int = 2, rounds: int = 5, compile_: bool = True,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Medians of ``rounds`` interleaved timings (fps) per model, size and engine, with
    each engine's max abs difference from eager on [0, 1] and whether it would be adopted."""
    torch.set_num_threads(int(threads))
    figures: dict[str, Any] = {"threads": threads, "device": device or "auto",
                               "onnxruntime": importlib.util.find_spec("onnxruntime")
                               is not None,
                               "openvino": importlib.util.find_spec("openvino") is not None}
    rng = np.random.default_rng(0)
    for name in models:
        enh = Enhancer.load(name, device=device)
        cuda = enh.device.startswith("cuda")
        for n in sizes:
            if enh.meta.arch == "quality" and n > 512 and not cuda:
                continue  # seconds per frame: not a live-view model on a CPU
            frame = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
            x = torch.from_numpy(frame.astype(np.float32) / 255).permute(2, 0, 1)[None]
            norm = enh.meta.normalisation
            m = torch.tensor(norm.mean).view(1, -1, 1, 1)
            s = torch.tensor(norm.std).view(1, -1, 1, 1)
            x = ((x - m) / s).contiguous().to(enh.device)
            if cuda:
                enh.model = enh.model.float()
            engines = _engines(enh, x, compile_ and n <= 512)
            if not cuda:
                engines.update(_onnx_engines(enh.model, x))

            def full(frame: np.ndarray = frame, enh: Enhancer = enh) -> Any:
                return enh.enhance(frame)

            engines["Enhancer.enhance"] = full
            ref = (engines["eager"]() * s.to(x.device) + m.to(x.device)).clamp(0, 1).float()
            diffs: dict[str, float] = {}
            for key, fn in engines.items():
                if key == "Enhancer.enhance":
                    y = torch.from_numpy(fn().astype(np.float32) / 255).permute(2, 0, 1)[None]
                    diffs[key] = float((y.to(ref.device) - ref).abs().max())
                    continue
                t0 = time.perf_counter()
                y = fn()  # warm-up (and compile)
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
                       "adopt": bool(key not in ("eager", "Enhancer.enhance")
                                     and speed >= ADOPT_SPEEDUP
                                     and diffs[key] < ADOPT_MAX_DIFF)}
                figures[f"{name} {n}² {key}"] = row
                log(f"engine {name} {n}² {key}: {row['fps']} fps, x{row['vs_eager']} vs eager, "
                    f"max diff {row['max_abs_diff']}, adopt {row['adopt']}")
    return figures
