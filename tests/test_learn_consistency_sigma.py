"""Consistency map in noise units: glass and camera noise stay dark, invented detail lights
up exactly where it was pasted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from thinkscope_gui.learn.consistency import (
    _conv_same,
    _kernels,
    consistency_sigma,
    noise_variance,
)

NA, LR_PX, HR_PX = 0.95, 0.1625, 0.065   # 40x -> 100x, scale 2.5


def _glass(seed: int, level: float = 90.0, sigma: float = 4.0) -> np.ndarray:
    """Noise-only glass: a flat field with Poisson-like camera noise, 8-bit RGB."""
    rng = np.random.default_rng(seed)
    img = level + sigma * rng.standard_normal((128, 128, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _upsample(img: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    up = F.interpolate(t, size=(size, size), mode="bicubic", align_corners=False)
    return np.clip(np.rint(up[0].permute(1, 2, 0).numpy()), 0, 255).astype(np.uint8)


def test_fft_reimage_matches_direct_convolution() -> None:
    k = _kernels(NA, HR_PX, LR_PX, 3)
    p = k.shape[-1] // 2
    for h, w in ((200, 170), (230, 241), (97, 96)):   # fast and slow FFT sizes
        x = torch.rand(1, 3, h, w)
        xp = F.pad(x, (p, p, p, p), mode="replicate")
        got = _conv_same(x, k, p)
        assert got.shape == x.shape
        assert float((got - F.conv2d(xp, k, groups=3)).abs().max()) < 1e-4


def test_noise_estimate_from_a_subgrid_matches_every_pixel() -> None:
    """Big frames take the bins' statistics from a sub-grid: same σ within a few %."""
    rng = np.random.default_rng(4)
    ramp = np.linspace(0.2, 0.8, 400, dtype=np.float32)[None, :, None]
    clean = np.broadcast_to(ramp, (400, 400, 3))
    lr = clean + np.sqrt(0.0004 * clean) * rng.standard_normal((400, 400, 3)).astype(
        np.float32)                                       # shot noise: σ² ∝ signal
    every = noise_variance(lr, sample=10**9)
    sub = noise_variance(lr)                              # 400² -> a 3rd of each axis
    assert np.allclose(np.sqrt(sub), np.sqrt(every), rtol=0.05)
    truth = np.sqrt(0.0004 * clean[..., 0])
    inner = (slice(20, -20), slice(20, -20))
    assert np.allclose(np.sqrt(sub)[inner], truth[inner], rtol=0.1)


def test_noise_estimate_follows_the_frame() -> None:
    lr = _glass(1, sigma=4.0)
    var = noise_variance(lr.astype(np.float32) / 255)
    assert np.allclose(np.sqrt(var) * 255, 4.0, rtol=0.15)


def test_honest_enhancement_of_glass_stays_below_two_sigma() -> None:
    lr = _glass(2)
    denoised = np.full((320, 320, 3), 90, np.uint8)    # the truth: clean glass
    upsampled = _upsample(lr, 320)                      # noise carried through
    for hr in (denoised, upsampled):
        z = consistency_sigma(lr, hr, NA, LR_PX, HR_PX)
        assert z.shape == lr.shape[:2]
        assert float(np.mean(z < 2.0)) >= 0.99


def test_pasted_structure_lights_up_exactly_there() -> None:
    lr = _glass(3)
    hr = np.full((320, 320, 3), 90, np.uint8)
    hr[150:175, 100:125] = 160                          # detail the camera never saw
    z = consistency_sigma(lr, hr, NA, LR_PX, HR_PX)
    inside = z[60:70, 40:50]                            # HR 150..175 x 100..125 / 2.5
    assert inside.min() > 5.0
    far = np.ones_like(z, bool)
    far[50:80, 30:60] = False                           # the blob and its blurred rim
    assert float(np.mean(z[far] < 2.0)) >= 0.99
    peak = np.unravel_index(np.argmax(z), z.shape)
    assert 58 <= peak[0] <= 72 and 38 <= peak[1] <= 52


def _bilinear_demosaic(mosaic: np.ndarray) -> np.ndarray:
    """RGGB mosaic -> RGB by bilinear interpolation, as many colour cameras deliver."""
    from scipy.ndimage import convolve

    h, w = mosaic.shape
    masks = np.zeros((3, h, w), bool)
    masks[0, 0::2, 0::2] = True
    masks[1, 0::2, 1::2] = masks[1, 1::2, 0::2] = True
    masks[2, 1::2, 1::2] = True
    k_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0
    k_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4.0
    return np.stack([convolve(mosaic * masks[c], k_g if c == 1 else k_rb, mode="mirror")
                     for c in range(3)], axis=-1)


def test_noise_estimate_of_a_colour_camera_does_not_alias_with_its_bayer_pattern() -> None:
    """Big frames take the bins' statistics from a sub-grid; an even step would sample one
    phase of the 2x2 colour pattern only (half of whose pixels are interpolated) and read
    a demosaiced camera's noise several times too low."""
    rng = np.random.default_rng(6)
    mosaic = 0.5 + 0.01 * rng.standard_normal((400, 400))
    rgb = _bilinear_demosaic(mosaic).astype(np.float32)
    every = np.sqrt(np.median(noise_variance(rgb, sample=10**9)))
    sub = np.sqrt(np.median(noise_variance(rgb)))      # 400²: a step of 4 without the fix
    assert sub == pytest.approx(every, rel=0.15), (sub, every)
