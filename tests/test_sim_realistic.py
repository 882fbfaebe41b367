"""The realistic simulated stand: each physical effect it adds over the ideal one, measured.

Every test here fails on the ideal stand (or with the effect switched off): condenser-limited
resolution, the Bayer mosaic, bias and fixed-pattern noise, the 12-bit camera, the turned
camera and off-nominal pixel size, stage repeatability and the absence of position metadata.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

import main
from hardware import MicroscopeError, open_microscope
from hardware.microscope import Microscope
from hardware.sim import slide
from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.realistic import (
    ACHROMAT_OPTICS,
    BIAS_DN,
    REALISTIC_OPTICS,
    RealisticRenderer,
    bayer_channel,
    demosaic_bilinear,
    source_points,
)
from hardware.sim.render import SimRenderer

SHAPE = (128, 128)
GLASS = (3000.0, 8000.0)
TISSUE = (4100.0, -1200.0)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def real() -> RealisticRenderer:
    return RealisticRenderer()


@pytest.fixture
def scope() -> Iterator[Microscope]:
    s = open_microscope("sim:realistic", sensor=(256, 256))
    try:
        yield s
    finally:
        s.close()


def _focus(opt_table: dict, obj: str, x: float, y: float) -> float:
    return slide.slide_surface_z(x, y) + opt_table[obj].true_parfocal_z_um


# --------------------------------------------------------------------------- optics
def _bar_modulation(r: SimRenderer, obj: str, period: float) -> np.ndarray:
    """Modulation at the bar frequency (spectral line / mean, Hann window), per channel."""
    opt = r.optics[obj]
    g = next(b for b in slide.bar_groups() if b.period_um == period and b.orientation == "v")
    x, y = (g.center_xy_um[0] - opt.true_offset_xy_um[0],
            g.center_xy_um[1] - opt.true_offset_xy_um[1])
    t = r.transmission(x, y, _focus(r.optics, obj, x, y), obj, SHAPE)[32:96]  # inside
    xs = np.arange(SHAPE[1]) * opt.pixel_size_um * np.cos(np.radians(opt.true_rotation_deg))
    w = np.hanning(SHAPE[1])[None, :, None]
    line = np.abs((t * w * np.exp(-2j * np.pi * xs / period)[None, :, None]).sum(axis=1))
    return np.median(2 * line / (t * w).sum(axis=1), axis=0)


def test_condenser_na_sets_the_resolution_limit() -> None:
    # 0.36 µm bars (2.78 cycles/µm) under the 40x/0.95: the incoherent cutoff 2NA/λ passes
    # them in every channel; the Köhler cutoff (NA + NA_cond)/λ only with a wide condenser.
    base = REALISTIC_OPTICS["40x"]
    narrow = RealisticRenderer({"40x": dataclasses.replace(base, condenser_na=0.3)})
    wide = RealisticRenderer({"40x": dataclasses.replace(base, condenser_na=0.9)})
    incoherent = RealisticRenderer({"40x": dataclasses.replace(base, condenser_na=None)})
    m_narrow = _bar_modulation(narrow, "40x", 0.36)
    m_wide = _bar_modulation(wide, "40x", 0.36)
    assert np.all(m_narrow < 0.005), m_narrow  # (0.95 + 0.3)/λ < 2.78 for λ >= 0.47
    assert np.all(m_wide[1:] > 0.05), m_wide  # (0.95 + 0.9)/λ > 2.78 for green, blue
    assert np.all(_bar_modulation(incoherent, "40x", 0.36)[1:] > 0.05)
    # coarse bars are resolved whatever the condenser
    assert np.all(_bar_modulation(narrow, "40x", 1.0) > 0.3)


def test_the_achromat_stand_resolves_less_and_no_default_model_trains_on_it() -> None:
    # 0.40 µm bars (2.5 cycles/µm) under the 40x: the realistic stand's Köhler cutoff
    # (0.95 + 0.65)/λ passes them in every channel; the achromat's (0.75 + 0.45)/λ not in
    # red or green (1.97, 2.18 cycles/µm), just in blue (2.55)
    real = _bar_modulation(RealisticRenderer({"40x": REALISTIC_OPTICS["40x"]}), "40x", 0.40)
    achro = _bar_modulation(RealisticRenderer({"40x": ACHROMAT_OPTICS["40x"]}), "40x", 0.40)
    assert np.all(real > 0.05), real
    assert np.all(achro[:2] < 0.005) and achro[2] > 0.005, achro
    # the 100x/1.25 still resolves them: the pairs carry what a model must learn
    assert np.all(_bar_modulation(RealisticRenderer({"100x": ACHROMAT_OPTICS["100x"]}),
                                  "100x", 0.40) > 0.1)

    from thinkscope_gui.learn.rebuild import RebuildRecipe
    from thinkscope_gui.learn.sim_source import ALL_STANDS, STANDS, SimPairSource

    assert "achromat" in ALL_STANDS and "achromat" not in STANDS
    assert "achromat" not in RebuildRecipe().resolved().for_arch("quality").stands
    src = SimPairSource(1, tile=32, stand="achromat")
    assert src.lr(0).dtype == np.uint16 and src.bit_depth == 12 and src.hr(0).shape == (80, 80, 3)
    with pytest.raises(ValueError, match="achromat"):
        SimPairSource(1, tile=32, stand="nope")


def test_abbe_glass_is_uniform_and_source_fills_the_disc(real: RealisticRenderer) -> None:
    pts = source_points()
    assert np.isclose(np.hypot(*pts.T).max(), 1.0)  # rim points give the full cutoff
    assert np.allclose(pts.mean(axis=0), 0.0, atol=1e-12)
    t = real.transmission(*GLASS, 0.0, "100x", (64, 64))
    np.testing.assert_allclose(t, 1.0, atol=1e-4)


def test_realistic_stand_truth_is_off_nominal() -> None:
    for label, opt in REALISTIC_OPTICS.items():
        nominal = DEFAULT_SIM_OPTICS[label].pixel_size_um
        assert 0.005 <= abs(opt.pixel_size_um / nominal - 1) <= 0.02
        assert opt.condenser_na is not None and opt.condenser_na < 1.0  # dry condenser
    assert abs(REALISTIC_OPTICS["100x"].true_rotation_deg - 90) < 2


@pytest.mark.parametrize("renderer_cls", [SimRenderer, RealisticRenderer])
@pytest.mark.parametrize("obj", ["40x", "100x"])
def test_defocused_edges_match_a_larger_rendering(renderer_cls: type, obj: str) -> None:
    """5 µm from focus the blur disc is ~15 µm wide: no wrap-around into the frame edge."""
    r = renderer_cls()
    x, y = 3000.0, 200.0
    z = _focus(r.optics, obj, x, y) + 5.0
    small = r.transmission(x, y, z, obj, (96, 96))
    big = r.transmission(x, y, z, obj, (288, 288))[96:192, 96:192]
    band = np.ones((96, 96), bool)
    band[12:-12, 12:-12] = False
    assert small.std() > 0.02  # there is structure to get wrong
    assert np.abs(small - big)[band].max() < 0.005


def test_defocused_frames_sampled_at_pixels_match_half_pixel_sampling() -> None:
    class HalfPixel(SimRenderer):
        def _pixel_sampled(self, opt: object, margin: int) -> bool:
            return False

    x, y = 3000.0, 200.0
    fast, ref = SimRenderer(), HalfPixel()
    for obj, dz in (("40x", 1.5), ("100x", 3.0)):
        z = _focus(fast.optics, obj, x, y) + dz
        a, b = fast.transmission(x, y, z, obj, SHAPE), ref.transmission(x, y, z, obj, SHAPE)
        assert np.abs(a - b).max() < 0.005


# --------------------------------------------------------------------------- camera
def test_bayer_mosaic_shows_in_noise_per_colour_site(real: RealisticRenderer) -> None:
    """Demosaiced noise: full variance where a colour was measured, a quarter where it was
    interpolated from four neighbours (an RGB sensor has equal variance everywhere)."""
    a, b = (real.render(*GLASS, 0.0, "40x", SHAPE, bit_depth=12,
                        rng=np.random.default_rng(s)).astype(float) for s in (1, 2))
    d = a - b  # fixed patterns cancel
    site = bayer_channel(SHAPE)
    rows = np.arange(SHAPE[0])[:, None] % 2 + np.zeros(SHAPE, int)
    var = {(ch, name): d[..., ch][mask].var()
           for ch in range(3)
           for name, mask in (("R", site == 0), ("B", site == 2),
                              ("G", site == 1), ("Gr", (site == 1) & (rows == 0)))}
    assert var[0, "R"] / var[0, "B"] > 2.5
    assert var[2, "B"] / var[2, "R"] > 2.5
    assert var[1, "G"] / var[1, "R"] > 2.5
    ideal = SimRenderer()
    a, b = (ideal.render(*GLASS, 0.0, "40x", SHAPE, bit_depth=16,
                         rng=np.random.default_rng(s)).astype(float) for s in (1, 2))
    d = a - b
    assert d[..., 0][site == 0].var() / d[..., 0][site == 2].var() < 1.3


def test_demosaic_restores_flat_colours_and_keeps_measured_pixels() -> None:
    rgb = np.empty((8, 10, 3), np.float32)
    rgb[...] = (100.0, 200.0, 300.0)
    for y0, x0 in ((0, 0), (1, 0), (0, 1), (1, 1)):
        site = bayer_channel((8, 10), y0, x0)
        raw = np.choose(site, (rgb[..., 0], rgb[..., 1], rgb[..., 2])).astype(np.float32)
        np.testing.assert_allclose(demosaic_bilinear(raw, y0, x0), rgb)
        noise = np.random.default_rng(0).random((8, 10)).astype(np.float32)
        out = demosaic_bilinear(noise, y0, x0)
        for ch in range(3):
            np.testing.assert_array_equal(out[..., ch][site == ch], noise[site == ch])


def test_dark_frame_reads_bias_with_fixed_pattern_and_hot_pixels(
        real: RealisticRenderer) -> None:
    darks = [real.render(*GLASS, 0.0, "40x", SHAPE, exposure_ms=100.0, bit_depth=12,
                         lamp_on=False, rng=np.random.default_rng(s)).astype(float)
             for s in (3, 4)]
    med = np.median(darks[0])
    assert abs(med - BIAS_DN) < 3  # the ideal camera reads ~0 here
    # hot pixels: far above the bias, at the same place in both frames
    hot0, hot1 = darks[0].max(axis=2) > med + 40, darks[1].max(axis=2) > med + 40
    assert hot0.sum() >= 1 and (hot0 == hot1).mean() > 0.999
    # fixed-pattern offset: pixel values of two dark frames correlate (away from hot pixels)
    cold = ~(hot0 | hot1)
    g0, g1 = darks[0][..., 1][cold], darks[1][..., 1][cold]
    assert np.corrcoef(g0, g1)[0, 1] > 0.3
    ideal = SimRenderer().render(*GLASS, 0.0, "40x", SHAPE, bit_depth=16, lamp_on=False)
    assert np.median(ideal) < 5


def test_core_reports_12_bits_and_frames_stay_below_4096(scope: Microscope) -> None:
    assert scope.core.getImageBitDepth() == 12
    assert scope.bit_depth() == 12
    scope.set_exposure(30.0)  # overexposed glass saturates at 4095, not 65535
    scope.set_xy(*GLASS)
    img = scope.snap()
    assert img.dtype == np.uint16 and img.max() == 4095


def _live_metadata(scope: Microscope) -> dict:
    scope.start_live()
    try:
        deadline = time.monotonic() + 30.0
        while scope.latest_frame() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        _, md = scope.core.getLastImageAndMD()
    finally:
        scope.stop_live()
    return dict(md)


def test_frames_carry_no_stage_position(scope: Microscope) -> None:
    md = _live_metadata(scope)
    assert md and not [k for k in md if str(k).startswith("Sim")]
    with open_microscope("sim", sensor=(32, 32)) as ideal:  # the ideal stand does record it
        assert "SimX_um" in _live_metadata(ideal)


def test_unknown_simulated_stand_is_refused() -> None:
    with pytest.raises(MicroscopeError, match="sim:realistic"):
        open_microscope("sim:perfect")


# --------------------------------------------------------------------------- geometry
def _register(ref: np.ndarray, img: np.ndarray) -> np.ndarray:
    """Shift (rows, cols) of `img`'s content relative to `ref`, in px.

    Vignetting and the camera's fixed-pattern noise do not move with the specimen and pull
    a plain phase correlation towards zero: high-pass the frames, find the shift coarsely
    on smoothed frames, then refine on crops that overlap in specimen, not in pixels.
    """
    from scipy.ndimage import gaussian_filter

    ref, img = ref - gaussian_filter(ref, 8), img - gaussian_filter(img, 8)  # no vignetting
    coarse, _, _ = phase_cross_correlation(gaussian_filter(ref, 2), gaussian_filter(img, 2),
                                           normalization=None)
    gy, gx = (-int(round(v)) for v in coarse)
    h, w = ref.shape
    m = max(abs(gy), abs(gx)) + 4
    a = ref[m : h - m, m : w - m]
    b = img[m + gy : h - m + gy, m + gx : w - m + gx]
    fine, _, _ = phase_cross_correlation(a, b, upsample_factor=50, normalization=None)
    return np.array([gy - fine[0], gx - fine[1]])


def _gray(scope: Microscope) -> np.ndarray:
    return scope.snap().astype(float).mean(axis=2)


def _to_objective(scope: Microscope, obj: str) -> None:
    scope.set_objective(obj)
    x, y = scope.xy()
    scope.set_z(_focus(REALISTIC_OPTICS, obj, x, y))


def test_pixel_size_and_rotation_measured_by_registration(scope: Microscope) -> None:
    scope.core.setProperty("XYStage", "Repeatability_um", 0.0)
    scope.set_xy(*TISSUE)
    for obj, move in (("40x", 8.0), ("100x", 4.0)):
        _to_objective(scope, obj)
        assert scope.pixel_size_um() == pytest.approx(DEFAULT_SIM_OPTICS[obj].pixel_size_um)
        x, y = scope.xy()
        a = _gray(scope)
        scope.set_xy(x + move, y)
        shift = _register(a, _gray(scope))
        measured = move / float(np.hypot(*shift))
        true = REALISTIC_OPTICS[obj].pixel_size_um
        assert measured == pytest.approx(true, rel=0.004), (obj, measured, true)
        assert abs(measured / scope.pixel_size_um() - 1) > 0.005  # the nominal is off
        if obj == "100x":  # camera turned by ~90°: a stage x move runs along the rows
            assert abs(shift[0]) > 20 * abs(shift[1])
        else:
            assert abs(shift[1]) > 20 * abs(shift[0])


def test_stage_repeatability_is_about_a_third_of_a_micron(scope: Microscope) -> None:
    scope.set_xy(TISSUE[0] + 3.0, TISSUE[1])
    ref = _gray(scope)  # off home, so fixed-pattern noise does not align with the specimen
    shifts = []
    for k in range(8):
        scope.set_xy(TISSUE[0] + 40.0 * (k % 2 * 2 - 1), TISSUE[1] + 25.0)
        scope.set_xy(*TISSUE)
        assert scope.xy() == pytest.approx(TISSUE, abs=1e-9)  # reports the commanded spot
        shifts.append(_register(ref, _gray(scope)) * REALISTIC_OPTICS["40x"].pixel_size_um)
    spread = np.asarray(shifts) - np.mean(shifts, axis=0)
    rms = float(np.sqrt((spread**2).sum(axis=1).mean()))
    assert 0.12 < rms < 0.6, shifts  # 0.3 µm radial RMS (less 1/8 for the mean)
    scope.core.setProperty("XYStage", "Repeatability_um", 0.0)
    scope.set_xy(*TISSUE)
    exact = _register(ref, _gray(scope)) * REALISTIC_OPTICS["40x"].pixel_size_um
    scope.set_xy(TISSUE[0] - 40.0, TISSUE[1])
    scope.set_xy(*TISSUE)
    again = _register(ref, _gray(scope)) * REALISTIC_OPTICS["40x"].pixel_size_um
    assert np.hypot(*(exact - again)) < 0.03  # without the error, returns are exact


# --------------------------------------------------------------------------- selection
def test_sim_option_selects_the_stand() -> None:
    parser = main.build_parser()
    assert main._source_from_args(parser.parse_args([])) == "sim"
    assert main._source_from_args(parser.parse_args(["--sim", "ideal", "bench", "camera"])) == "sim"
    args = parser.parse_args(["--sim", "realistic", "bench", "camera"])
    assert main._source_from_args(args) == "sim:realistic"
    with pytest.raises(SystemExit):
        parser.parse_args(["--sim", "perfect"])


def test_live_on_the_realistic_stand_matches_snaps(real: RealisticRenderer) -> None:
    x, y = TISSUE
    z = _focus(real.optics, "40x", x, y)
    p = real.optics["40x"].pixel_size_um
    x, y = round(x / p) * p, round(y / p) * p  # live snaps the stage to whole pixels
    first = real.render(x, y, z, "40x", (256, 256), live=True, noise=False)
    assert first.shape == (256, 256, 3)  # served at once, from previews
    assert real.settle_live(x, y, z, "40x", (256, 256))  # the worker images the tiles
    live = real.render(x, y, z, "40x", (256, 256), live=True, noise=False)
    snap = real.render(x, y, z, "40x", (256, 256), noise=False)
    diff = np.abs(live.astype(float) - snap.astype(float))
    assert np.median(diff) < 20 and diff.mean() < 25  # of 4095: same image, same camera
