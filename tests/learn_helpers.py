"""Small synthetic pairs and models for the learn tests (no simulator needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.transform import resize

from hardware.profiles import load_profiles
from thinkscope_gui.learn.meta import ModelMeta
from thinkscope_gui.learn.modelfile import save_model
from thinkscope_gui.learn.models import build_model


def synthetic_hr(rng: np.random.Generator, n: int) -> np.ndarray:
    """Dark blobs on a bright background, sharp at HR sampling (float 0..1, RGB)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    img = np.ones((n, n, 3), np.float32) * 0.9
    for _ in range(25):
        cy, cx, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(1.5, 5)
        col = rng.uniform(0.2, 0.7, 3)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        img[mask] = col
    return img


def make_folder_pairs(root: Path, n: int = 6, lr_size: int = 40, seed: int = 0,
                      dtype: type = np.uint8) -> Path:
    """root/lr, root/hr PNGs (HR blurred-and-downsampled by 2.5) with tile positions."""
    scale = 0.1625 / 0.065
    rng = np.random.default_rng(seed)
    (root / "lr").mkdir(parents=True, exist_ok=True)
    (root / "hr").mkdir(parents=True, exist_ok=True)
    hr_size = int(round(lr_size * scale))
    tiles = {}
    for i in range(n):
        hr = synthetic_hr(rng, hr_size)
        lr = resize(hr, (lr_size, lr_size, 3), anti_aliasing=True,
                    anti_aliasing_sigma=(1.5, 1.5, 0))
        name = f"t{i:02d}.png"
        Image.fromarray((hr * 255).round().astype(np.uint8)).save(root / "hr" / name)
        Image.fromarray((lr * 255).round().astype(np.uint8)).save(root / "lr" / name)
        tiles[name] = {"tile_ix": i % 3, "tile_iy": i // 3}
    profiles = load_profiles()
    (root / "pairs.json").write_text(json.dumps({
        "lr_profile": profiles["40x"].model_dump(), "hr_profile": profiles["100x"].model_dump(),
        "tiles": tiles}))
    return root


def make_model_file(path: Path, arch: str = "fast", channels: int = 3,
                    params: dict | None = None, seed: int = 0) -> Path:
    """A randomly initialised (non-trivial) model saved as a real model file."""
    torch.manual_seed(seed)
    profiles = load_profiles()
    lr, hr = profiles["40x"], profiles["100x"]
    scale = lr.pixel_size_um / hr.pixel_size_um
    model = build_model(arch, channels, scale, params)
    with torch.no_grad():
        torch.nn.init.normal_(model.up.conv.weight, std=0.05)
    meta = ModelMeta(arch=arch, arch_params=model.arch_params, scale=scale, channels=channels,
                     lr_profile=lr, hr_profile=hr, lr_pixel_size_um=lr.pixel_size_um,
                     hr_pixel_size_um=hr.pixel_size_um, command="tests")
    return save_model(model, meta, path)


def tiny_model_at_scale(scale: float, seed: int = 0):
    """A small random fast network for 40x -> 100x at ``scale`` and its metadata: for tests
    of tiling, streaming and any-scale geometry, where the weights need not be trained."""
    from thinkscope_gui.learn.models import build_model

    torch.manual_seed(seed)
    prof = load_profiles()
    model = build_model("fast", 3, scale, {"feats": 8, "layers": 1})
    with torch.no_grad():
        torch.nn.init.normal_(model.up.conv.weight, std=0.05)
    lr = prof["40x"]
    meta = ModelMeta(arch="fast", arch_params=model.arch_params, scale=scale, channels=3,
                     lr_profile=lr, hr_profile=prof["100x"], lr_pixel_size_um=lr.pixel_size_um,
                     hr_pixel_size_um=lr.pixel_size_um / scale, command="tests")
    return model, meta
