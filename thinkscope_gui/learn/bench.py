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


_MEMORY_PROBE = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, torch
from thinkscope_gui.learn.imageio import enhance_file
from thinkscope_gui.learn.infer import Enhancer
model, device = sys.argv[1] or None, sys.argv[2] or None
src, dst, threads = Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
enh = Enhancer.load(model, device=device)
enh.enhance(np.zeros((64, 64, 3), np.uint8))  # warm: allocator, kernels
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
enhance_file(enh, src, dst)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak, "seconds": dt}))
"""
#: the "+ a constant" of the streaming bound: torch scratch, one band's float buffers
MEMORY_CONSTANT = 256 << 20


def _test_image(path: Path, size: int) -> None:
    """A textured uint8 RGB TIFF, built row block by row block (the bench's own memory)."""
    import tifffile

    img = np.empty((size, size, 3), np.uint8)
    x = np.sin(np.arange(size, dtype=np.float32) / 7.0)
    for y0 in range(0, size, 512):
        y = np.cos(np.arange(y0, min(size, y0 + 512), dtype=np.float32) / 11.0)
        img[y0:y0 + len(y)] = (127 + 60 * y[:, None, None] * x[None, :, None]).astype(np.uint8)
    tifffile.imwrite(path, img, photometric="rgb")


def bench_enhance_memory(model: str | Path | None = None, device: str | None = None,
                         size: int = 6000, threads: int = 2) -> dict[str, Any]:
    """Peak RSS of `enhance` on a size x size RGB image (fresh subprocess, so the figure
    is this job's alone): the streamed bands must stay within ~2x the output + a constant."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.tif", Path(tmp) / "out.tif"
        _test_image(src, size)
        r = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(model or ""), device or "",
                            str(src), str(dst), str(threads)], capture_output=True, text=True,
                           env=env, timeout=3600)
        out_bytes = dst.stat().st_size if dst.is_file() else 0
    if r.returncode != 0:
        return {f"mem_{size}_error": r.stderr.strip().splitlines()[-1:]}
    m = json.loads(r.stdout.strip().splitlines()[-1])
    mib = 2**20
    growth = m["peak"] - m["base"]
    m["out_bytes"] = out_bytes
    return {f"mem_{size}x{size}_output_MiB": round(out_bytes / mib, 1),
            f"mem_{size}x{size}_peak_rss_MiB": round(m["peak"] / mib, 1),
            f"mem_{size}x{size}_rss_before_MiB": round(m["base"] / mib, 1),
            f"mem_{size}x{size}_rss_growth_MiB": round(growth / mib, 1),
            f"mem_{size}x{size}_growth_over_output": round(growth / max(out_bytes, 1), 2),
            f"mem_{size}x{size}_within_2x_output_plus_256MiB":
                growth <= 2 * out_bytes + MEMORY_CONSTANT,
            f"mem_{size}x{size}_seconds": round(m["seconds"], 1)}
