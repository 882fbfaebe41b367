"""Speed figures of the enhancement models (called by `main.py bench enhance`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .infer import Enhancer

CPU_SIZES = (256, 512)
CUDA_SIZES = (256, 512, 2048)


def _fps(enh: Enhancer, frame: np.ndarray, seconds: float) -> float:
    enh.enhance(frame)  # warm-up (allocations, cudnn autotune, compile)
    n, t0 = 0, time.perf_counter()
    while True:
        enh.enhance(frame)
        n += 1
        if enh.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return n / dt


def bench_enhance(model: str | Path | None = None, device: str | None = None,
                  seconds: float = 5.0, threads: int = 2, sizes: tuple[int, ...] | None = None,
                  compile: bool = False) -> dict[str, Any]:
    """Enhanced frames/s of a model (default: the fast one) on uint8 RGB frames.

    CPU runs on `threads` threads (the target machine budget: >=25 fps at 256x256, >=8 at
    512x512); CUDA uses fp16 + channels_last and adds 2048x2048; compile=True wraps the
    network in torch.compile."""
    if threads:
        torch.set_num_threads(int(threads))
    enh = Enhancer.load(model, device=device)
    if compile:
        enh.model = torch.compile(enh.model)  # type: ignore[assignment]
    sizes = sizes or (CUDA_SIZES if enh.device.startswith("cuda") else CPU_SIZES)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"model": str(enh.path), "arch": enh.meta.arch,
                           "device": enh.device, "threads": torch.get_num_threads(),
                           "precision": "fp16" if enh.half else "fp32", "scale": enh.scale}
    per_image = max(seconds / len(sizes), 0.5)
    for n in sizes:
        frame = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
        out[f"fps_{n}x{n}"] = round(_fps(enh, frame, per_image), 2)
    if enh.meta.arch == "fast" and not enh.device.startswith("cuda"):  # live-view targets
        out["target_256_ok"] = out.get("fps_256x256", 0) >= 25
        out["target_512_ok"] = out.get("fps_512x512", 0) >= 8
    return out
