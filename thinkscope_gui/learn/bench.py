"""Speed figures of the enhancement models (called by `main.py bench enhance`)."""

from __future__ import annotations

import time
from collections.abc import Callable
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


def _blobs(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random coloured discs on a bright background, (size, size, 3) float32 in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size]
    hr = np.full((size, size, 3), 0.9, np.float32)
    for _ in range(60):
        cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(2, 8)]
        hr[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.2, 0.7, 3)
    return hr


def synthetic_store(path: Path, n: int = 16, lr_size: int = 128, seed: int = 0,
                    hr_image: Callable[[np.random.Generator, int], np.ndarray] = _blobs
                    ) -> Path:
    """A real pair store of synthetic pictures (LR = area-downsampled HR / 2.5), needing no
    microscope: for the training benchmark (speed depends on tensor sizes, not on the
    picture) and for tests. ``hr_image(rng, size)`` draws each HR tile in [0, 1]."""
    import json

    import torch.nn.functional as F

    from thinkscope_gui.pairs.store import LRTileRecord, PairRecord, PairWriter, StoreHeader

    def prof(label: str, px: float, mag: float, na: float, imm: str) -> str:
        return json.dumps({"label": label, "magnification": mag, "na": na, "immersion": imm,
                           "pixel_size_um": px})

    hr_size = int(round(lr_size * 2.5))
    h = StoreHeader(lr_profile_json=prof("40x", 0.1625, 40, 0.95, "dry"),
                    hr_profile_json=prof("100x", 0.065, 100, 1.4, "oil"), scale=2.5,
                    lr_frame_shape=(lr_size, lr_size, 3), hr_frame_shape=(hr_size, hr_size, 3),
                    patch_lr_px=lr_size, dtype="uint8", bit_depth=8, source="bench")
    rng = np.random.default_rng(seed)
    with PairWriter.open(path, h) as w:
        for i in range(n):
            hr = np.asarray(hr_image(rng, hr_size), np.float32)
            t = torch.from_numpy(hr.transpose(2, 0, 1).copy())[None]
            lr = F.interpolate(t, size=(lr_size, lr_size), mode="area")[0].numpy()
            lr8 = (lr.transpose(1, 2, 0) * 255).round().astype(np.uint8)
            hr8 = (hr * 255).round().astype(np.uint8)
            ix, iy = i % 4, i // 4
            xy = (10.0 * ix, 10.0 * iy)
            w.append_tile(LRTileRecord(tile_index=i, ix=ix, iy=iy, stage_xy_um=xy, z_um=0.0,
                                       focus_score=1.0, tissue_fraction=1.0, frame=lr8))
            w.append_pair(PairRecord(
                tile_index=i, lr_tile=i, ix=ix, iy=iy, stage_xy_um=xy, hr_stage_xy_um=xy,
                z_um=(0.0, 0.0), focus_score=(1.0, 1.0), transform=(0.0, 0.0, 0.0),
                correlation=1.0, crop_origin=(0, 0), accepted=True, reason="", tissue=True,
                lr_patch=lr8, hr_patch=hr8, hr_frame=hr8))
    return path


def bench_train(procs: tuple[int, ...] = (1, 2), device: str | None = None, arch: str = "fast",
                steps: int = 30, batch: int = 16, patch: int = 48, threads: int = 1,
                timeout_s: float = 900.0) -> dict[str, Any]:
    """Training samples/s (patches through forward+backward+step, summed over processes)
    of `main.py train` in 1 process and under torchrun with N processes, on a synthetic
    store. Each run is a real subprocess (what a user launches); the figure is the trainer's
    own, taken after the warm-up step and without loading or validation. Every process gets
    `threads` CPU threads (1: one core per process, so the figures show data-parallel
    scaling; on a busy machine intra-op threads contend badly)."""
    import os
    import re
    import subprocess
    import sys
    import tempfile

    from .infer import pick_device

    device = pick_device(device)
    cores = os.cpu_count() or 1
    root = Path(__file__).resolve().parents[2]
    out: dict[str, Any] = {"device": device, "arch": arch, "global_batch": batch,
                           "patch": patch, "steps": steps, "cpu_cores": cores,
                           "threads_per_process": threads}
    with tempfile.TemporaryDirectory(prefix="thinkscope-bench-train-") as tmp:
        store = synthetic_store(Path(tmp) / "pairs.h5")
        for n in procs:
            if device.startswith("cuda") and n > torch.cuda.device_count():
                out[f"samples_per_s_{n}proc"] = f"skipped: needs {n} GPUs"
                continue
            args = ["main.py", "train", "--store", str(store), "--arch", arch, "--epochs", "1",
                    "--steps", str(steps), "--batch", str(batch), "--patch", str(patch),
                    "--threads", str(threads), "--device", device,
                    "--out", str(Path(tmp) / f"m{n}.safetensors")]
            launch = ([] if n == 1 else ["-m", "torch.distributed.run", "--standalone",
                                         "--nproc_per_node", str(n)])
            env = {**os.environ, "OMP_NUM_THREADS": str(threads),
                   "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
            r = subprocess.run([sys.executable, *launch, *args], cwd=root, env=env,
                               capture_output=True, text=True, timeout=timeout_s)
            m = re.search(r"([\d.]+) samples/s on (\d+) process", r.stdout)
            if r.returncode != 0 or not m:
                out[f"samples_per_s_{n}proc"] = (
                    f"failed (rc {r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}")
                continue
            out[f"samples_per_s_{n}proc"] = float(m.group(1))
    base = out.get(f"samples_per_s_{procs[0]}proc")
    for n in procs[1:]:
        v = out.get(f"samples_per_s_{n}proc")
        if isinstance(base, float) and isinstance(v, float):
            out[f"speedup_{n}proc"] = round(v / base, 2)
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
