"""The line-target region: a generic prior of fine, high-contrast structure for training
(random gratings, lines, dot lattices and edges), rendered by both stands, and nowhere else
on the slide. It is not the resolution target: no fixed periods at fixed places."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sim import slide
from thinkscope_gui.learn.sim_source import SimPairSource, tissue_regions

CENTRE = (-14500.0, 0.0)


def _peakiness(hr: np.ndarray, px_um: float, f_lo: float = 2.5, f_hi: float = 4.0) -> float:
    """Strongest Fourier component of the green channel between f_lo and f_hi cycles/µm
    (around the 40x cutoff) over the band's median: periodic detail there, not edges."""
    g = hr[..., 1].astype(np.float64)
    spec = np.abs(np.fft.fft2(g - g.mean()))
    f = np.hypot(np.fft.fftfreq(g.shape[0], px_um)[:, None],
                 np.fft.fftfreq(g.shape[1], px_um)[None, :])
    band = spec[(f > f_lo) & (f < f_hi)]
    return float(band.max() / np.median(band))


def test_region_is_named_not_tissue_and_holds_no_tissue() -> None:
    assert slide.tissue_at(*CENTRE) == "line_targets"
    assert "line_targets" not in tissue_regions() and "bar_target" not in tissue_regions()
    f = slide.tissue_fields(np.array([CENTRE[0]]), np.array([CENTRE[1]]))
    assert f["present"][0] == 0.0


@pytest.mark.parametrize("stand", ["ideal", "realistic"])
def test_line_targets_carry_periodic_detail_near_the_40x_cutoff(stand: str) -> None:
    # what a network must learn to restore (the 40x passes it barely or not at all) and the
    # tissue regions have little of: measured medians 54 / 29 (ideal / realistic) against
    # 12-16 for epithelium and lymphoid
    lines = SimPairSource(8, tissues=["line_targets"], tile=96, seed=3, noise=False,
                          stand=stand)
    tissue = SimPairSource(8, tissues=["epithelium", "lymphoid"], tile=96, seed=3,
                           noise=False, stand=stand)
    px = lines.hr_profile.pixel_size_um
    p_lines = np.median([_peakiness(lines.hr(i), px) for i in lines.pair_ids()])
    p_tissue = np.median([_peakiness(tissue.hr(i), px) for i in tissue.pair_ids()])
    assert p_lines > 2 * p_tissue, (p_lines, p_tissue)
    # high contrast: near-opaque and faint patches both occur, on clean glass
    hr = np.stack([lines.hr(i) for i in lines.pair_ids()]).astype(np.float64)
    glass = np.percentile(hr, 90)
    assert np.percentile(hr, 1) < 0.3 * glass and np.percentile(hr, 50) > 0.8 * glass
    assert not np.array_equal(lines.hr(0), lines.hr(1))


def test_orientations_and_periods_vary_from_cell_to_cell() -> None:
    # the strongest Fourier peak of each patch's neutral/stain map, over 4 x 4 cells
    d = 0.05
    n = int(slide.LINE_CELL_UM / d)
    angles, periods = set(), set()
    for ci in range(4):
        for cj in range(4):
            x0 = -14000.0 + ci * slide.LINE_CELL_UM
            y0 = 0.0 + cj * slide.LINE_CELL_UM
            m = slide.stain_maps(slide.Grid(x0, y0, d, n, n)).sum(axis=0)
            spec = np.abs(np.fft.rfft2(m - m.mean()))
            spec[0, 0] = 0
            i, j = np.unravel_index(np.argmax(spec), spec.shape)
            fy = np.fft.fftfreq(n, d)[i]
            fx = np.fft.rfftfreq(n, d)[j]
            angles.add(round(np.degrees(np.arctan2(fy, fx)) % 180 / 15))
            periods.add(round(np.log2(1 / max(np.hypot(fx, fy), 1e-9)) * 2))
    assert len(angles) >= 5 and len(periods) >= 4, (angles, periods)


def test_tissue_elsewhere_is_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    g = slide.Grid(5000.0, 100.0, 0.08, 64, 64)
    before = slide.stain_maps(g)
    monkeypatch.setattr(slide, "_line_targets", lambda grid, out: None)
    np.testing.assert_array_equal(slide.stain_maps(g), before)
