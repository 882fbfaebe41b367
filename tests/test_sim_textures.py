"""The simulator's fine textures: a bank of spectra chosen per nucleus and region, and a
texture seed that draws them anew without changing what a trained model can do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from hardware.sim import slide, texture
from hardware.sim.render import SimRenderer

BINS = np.array([0.5, 1.0, 2.0, 3.0, 4.5, 6.0, 8.0, 10.0])  # cycles/µm


def _radial_power(img: np.ndarray, d_um: float, bins: np.ndarray = BINS) -> np.ndarray:
    """Mean power of a (mean-removed, Hann-windowed) patch in radial frequency bins,
    normalised to unit sum: the spectral shape, whatever the contrast."""
    a = np.asarray(img, np.float64)
    a = a - a.mean()
    win = np.hanning(a.shape[0])[:, None] * np.hanning(a.shape[1])[None, :]
    p = np.abs(np.fft.fft2(a * win)) ** 2
    fr = np.hypot(np.fft.fftfreq(a.shape[0], d=d_um)[:, None],
                  np.fft.fftfreq(a.shape[1], d=d_um)[None, :])
    out = np.array([p[(fr >= lo) & (fr < hi)].mean()
                    for lo, hi in zip(bins[:-1], bins[1:], strict=True)])
    return out / out.sum()


def _centroid(power: np.ndarray) -> float:
    """Power-weighted mean frequency (cycles/µm) of a `_radial_power` spectrum."""
    mid = 0.5 * (BINS[:-1] + BINS[1:])
    return float((power * mid).sum())


def test_texture_seed_redraws_a_tile_with_the_same_spectrum() -> None:
    a, a2, b = texture._raw("chromatin", 0), texture._raw("chromatin", 0), texture._raw(
        "chromatin", 1)
    np.testing.assert_array_equal(a, a2)  # deterministic
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05  # a new realisation
    pa, pb = _radial_power(a, texture.TEXEL_UM), _radial_power(b, texture.TEXEL_UM)
    np.testing.assert_allclose(pa, pb, rtol=0.1)  # of the same spectrum
    assert abs(float(a.mean()) - float(b.mean())) < 0.01


def test_the_bank_holds_distinct_spectra() -> None:
    """Fine euchromatin is finer than clumpy chromatin, which is finer than condensed
    blocks; likewise for granules (whole tiles, exact spectra)."""
    c = {k: _centroid(_radial_power(texture._raw(k), texture.TEXEL_UM))
         for k in texture.FAMILIES}
    assert c["chromatin_fine"] > 1.2 * c["chromatin"] > 1.44 * c["chromatin_coarse"]
    assert c["granular_fine"] > 1.2 * c["granular"] > 1.44 * c["granular_coarse"]
    assert abs(c["chromatin_reticular"] - c["chromatin"]) > 0.3  # threads, not clumps


def _nucleus_patches(seed: int, d: float = 0.05, side_um: float = 3.0) -> list[np.ndarray]:
    """Chromatin of real nuclei of the epithelium (made large and without nucleoli, so a
    3 µm square inside each holds nothing but chromatin), as amount / OD; squares where
    nuclei overlap are left out (the same nuclei drawn without chromatin say where)."""
    kind = dataclasses.replace(slide.NUCLEI["epithelium"], cell_um=12.0, density=1.0,
                               a_um=(4.6, 4.6), b_um=(4.6, 4.6), od=(1.0, 1.0), nucleoli=0)
    grid = slide.Grid(4000.0, -1200.0, d, 1400, 1400, texture_seed=seed)
    maps = []
    for k in (kind, dataclasses.replace(kind, chromatin=0.0)):
        out = np.zeros((len(slide.STAINS), grid.nr, grid.nc), np.float32)
        slide._nuclei(grid, out, k, "epithelium", grid.bbox(), slide.aa_width(d))
        maps.append(out[0])
    h, masks = maps
    inside = ndimage.binary_erosion(masks > 0.5, iterations=int(1.0 / d))
    labels, n = ndimage.label(inside)
    half = int(side_um / d) // 2
    patches = []
    for cy, cx in ndimage.center_of_mass(inside, labels, range(1, n + 1)):
        r, c = int(cy), int(cx)
        if r - half < 0 or c - half < 0 or r + half > grid.nr or c + half > grid.nc:
            continue
        sl = (slice(r - half, r + half), slice(c - half, c + half))
        if np.abs(masks[sl] - 1.0).max() < 0.01:  # wholly inside one nucleus
            patches.append(h[sl])
    return patches


def test_nuclei_differ_in_chromatin_spectrum() -> None:
    """Across the nuclei of one tissue the chromatin's spectral centroid spreads far more
    than patches of a single spectrum do (what every nucleus had before the bank)."""
    patches = _nucleus_patches(0)
    assert len(patches) >= 8
    cents = np.array([_centroid(_radial_power(p, 0.05)) for p in patches])
    one = texture.tile("chromatin", 0.05)  # single spectrum, same sampling and patch size
    rng = np.random.default_rng(0)
    m = patches[0].shape[0]
    single = np.array([_centroid(_radial_power(
        np.roll(one, tuple(rng.integers(0, one.shape[0], 2)), (0, 1))[:m, :m], 0.05))
        for _ in range(20)])
    assert cents.max() / cents.min() > 1.8
    assert np.std(np.log(cents)) > 2.5 * np.std(np.log(single))
    # re-seeding keeps the nuclei but re-draws their textures
    other = _nucleus_patches(1)
    assert len(other) == len(patches)
    assert all(abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.5
               for a, b in zip(patches, other, strict=True))


def test_renderer_texture_seed_is_deterministic_and_keeps_the_specimen() -> None:
    x, y, obj = 4100.0, -1200.0, "100x"
    z = slide.slide_surface_z(x, y) + SimRenderer().optics[obj].true_parfocal_z_um
    a = SimRenderer(texture_seed=0).transmission(x, y, z, obj, (128, 128))
    a2 = SimRenderer().transmission(x, y, z, obj, (128, 128))
    b = SimRenderer(texture_seed=3).transmission(x, y, z, obj, (128, 128))
    np.testing.assert_array_equal(a, a2)
    assert np.abs(a - b).max() > 0.02  # the fine texture changed
    assert abs(float(a.mean()) - float(b.mean())) < 0.01  # the same nuclei and stains
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


@pytest.fixture(scope="module")
def fast_model():  # noqa: ANN201 - an Enhancer
    from thinkscope_gui.learn.infer import Enhancer
    from thinkscope_gui.learn.modelfile import DEFAULT_MODELS

    return Enhancer.load(DEFAULT_MODELS["fast"], device="cpu")


def test_reseeding_textures_moves_the_shipped_fast_models_gain_by_under_0_3_db(
        fast_model) -> None:  # noqa: ANN001
    """The gain over bicubic on held-out tissue is a property of the model, not of one
    realisation of the fine textures."""
    from thinkscope_gui.learn.evaluate import evaluate_tissue

    gains = [evaluate_tissue(fast_model, "stroma", n=4, tile=64, rl_iterations=(1,),
                             texture_seed=s)["gain_db_clean"] for s in (0, 7)]
    assert gains[0] > 0.5  # the model does something on these tiles
    assert abs(gains[0] - gains[1]) < 0.3, gains
