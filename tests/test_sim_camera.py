"""Sensor model and slide map of the simulator: exposure, bit depth, noise, tissue types."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hardware.sim import slide
from hardware.sim.render import FULL_WELL_E, READ_NOISE_E, SimRenderer

SHAPE = (128, 128)
GLASS = (3000.0, 8000.0)  # |y| > 6000: clean glass
TISSUE = (4100.0, -1200.0)


@pytest.fixture(scope="module")
def renderer() -> SimRenderer:
    return SimRenderer()


def test_glass_sits_at_three_quarters_of_full_scale(renderer: SimRenderer) -> None:
    for bits, full in ((8, 255), (16, 65535)):
        img = renderer.render(*GLASS, 0.0, "40x", SHAPE, bit_depth=bits, noise=False)
        assert img.dtype == (np.uint8 if bits == 8 else np.uint16)
        centre = img[60:68, 60:68].mean()
        assert abs(centre / full - 0.75) < 0.01
        assert img[0, 0].mean() < centre  # vignetting darkens the corners


def test_8_and_16_bit_agree(renderer: SimRenderer) -> None:
    a = renderer.render(*TISSUE, 0.0, "40x", SHAPE, bit_depth=8, noise=False).astype(float)
    b = renderer.render(*TISSUE, 0.0, "40x", SHAPE, bit_depth=16, noise=False).astype(float)
    assert np.abs(a - b / 257.0).max() <= 0.51


def test_exposure_scales_signal_and_saturates(renderer: SimRenderer) -> None:
    e5 = renderer.render_clean(*TISSUE, 0.0, "40x", SHAPE, exposure_ms=5.0)
    e10 = renderer.render_clean(*TISSUE, 0.0, "40x", SHAPE, exposure_ms=10.0)
    np.testing.assert_allclose(e10, 2 * e5, rtol=1e-5)
    long = renderer.render(*GLASS, 0.0, "40x", SHAPE, exposure_ms=20.0, noise=False)
    assert (long[40:88, 40:88] == 255).all()  # 1.5x full well clips at full scale
    dark = renderer.render(*GLASS, 0.0, "40x", SHAPE, lamp_on=False, bit_depth=16)
    assert dark.mean() < 5 * READ_NOISE_E * 65535 / FULL_WELL_E


def test_repeat_frames_differ_only_by_expected_noise(renderer: SimRenderer) -> None:
    a = renderer.render(*TISSUE, 0.0, "40x", SHAPE, bit_depth=16,
                        rng=np.random.default_rng(1)).astype(float)
    b = renderer.render(*TISSUE, 0.0, "40x", SHAPE, bit_depth=16,
                        rng=np.random.default_rng(2)).astype(float)
    e = renderer.render_clean(*TISSUE, 0.0, "40x", SHAPE)
    sigma_dn = np.sqrt(e + READ_NOISE_E**2) * 65535 / FULL_WELL_E
    z = (a - b) / (np.sqrt(2) * sigma_dn)
    assert abs(z.mean()) < 0.02
    assert 0.95 < z.std() < 1.05
    c = renderer.render(*TISSUE, 0.0, "40x", SHAPE, bit_depth=16, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, c)  # same seed, same frame


def test_live_noise_has_the_same_statistics(renderer: SimRenderer) -> None:
    frames = [renderer.render(*TISSUE, 0.0, "40x", SHAPE, bit_depth=16, live=True)
              for _ in range(2)]
    e = renderer.render_clean(*TISSUE, 0.0, "40x", SHAPE, live=True)
    sigma_dn = np.sqrt(e + READ_NOISE_E**2) * 65535 / FULL_WELL_E
    z = (frames[0].astype(float) - frames[1].astype(float)) / (np.sqrt(2) * sigma_dn)
    assert 0.9 < z.std() < 1.1


def test_concurrent_live_rendering_is_safe(renderer: SimRenderer) -> None:
    errors: list[BaseException] = []

    def work(dx: float) -> None:
        try:
            for k in range(3):
                renderer.render(TISSUE[0] + dx + k, TISSUE[1], 0.0, "40x", SHAPE, live=True)
        except BaseException as exc:  # noqa: BLE001 - report any failure to the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in (0.0, 7.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_tissue_types_differ_and_glass_is_empty() -> None:
    stats = {}
    for name, (x, y) in {"epithelium": (5000, 0), "stroma": (15000, 0),
                         "lymphoid": (-5000, 0), "glass": (5000, 7000)}.items():
        assert slide.tissue_at(x, y) == name
        grid = slide.Grid(x - 50.0, y - 50.0, 0.1, 1000, 1000)
        amt = slide.stain_maps(grid)
        stats[name] = (float((amt[0] > 0.3).mean()), float(amt[2].mean()))
        if name == "glass":
            assert not amt.any()
    nuclear = {k: v[0] for k, v in stats.items()}
    assert nuclear["lymphoid"] > nuclear["epithelium"] > nuclear["stroma"] > 0.0
    assert stats["stroma"][1] > 0.01 and stats["epithelium"][1] == 0.0  # fibres only in stroma


def test_bar_groups_lie_in_the_target_region() -> None:
    xmin, xmax, ymin, ymax = slide.REGIONS["bar_target"]
    periods = {g.period_um for g in slide.bar_groups()}
    assert {0.16, 0.25, 0.5, 1.0} <= periods
    for g in slide.bar_groups():
        x, y = g.center_xy_um
        assert xmin < x - g.size_um / 2 and x + g.size_um / 2 < xmax
        assert ymin < y - g.size_um / 2 and y + g.size_um / 2 < ymax
        assert slide.tissue_at(x, y) == "bar_target"
    assert abs(slide.slide_surface_z(1000.0, 0.0) - slide.slide_surface_z(0.0, 0.0)) > 0.1


def test_still_live_frames_keep_independent_noise(renderer: SimRenderer) -> None:
    """A still live field recycles a few noisy frames (the simulated camera's CPU): any two
    consecutive frames still differ by the full noise, the temporal mean converges on the
    clean frame, and a moved stage gets new frames at once."""
    frames = [renderer.render(*TISSUE, 0.0, "40x", SHAPE, bit_depth=16, live=True)
              .astype(float) for _ in range(40)]
    e = renderer.render_clean(*TISSUE, 0.0, "40x", SHAPE, live=True)
    sigma_dn = np.sqrt(e + READ_NOISE_E**2) * 65535 / FULL_WELL_E
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        z = (a - b) / (np.sqrt(2) * sigma_dn)
        assert 0.9 < z.std() < 1.1
    # distinct realisations: the mean of 40 frames is closer to the clean frame than one
    mean = np.mean(frames, axis=0)
    clean_dn = e * 65535 / FULL_WELL_E
    assert np.std(mean - clean_dn) < 0.45 * np.std(frames[0] - clean_dn)
    moved = renderer.render(TISSUE[0] + 40.0, TISSUE[1], 0.0, "40x", SHAPE, bit_depth=16,
                            live=True)
    assert np.abs(moved.astype(float) - frames[-1]).mean() > 3 * sigma_dn.mean()
