"""Any scale from 1.5 to 5, end to end: plan, registration, HR resampling, store,
training patches, models and Enhancer.

A calibrated pair of objectives never gives exactly 2.5: calibrating the 100x measures
e.g. 0.0650127 µm/px (scale 2.4995), and a lab's 40x may be 1.5 % off nominal. The HR is
resampled onto the exact grid of the pair's true scale (HR pixel k at LR coordinate
(k + 0.5)/scale - 0.5) and the models upsample by exactly that scale.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hardware import open_microscope
from hardware.sim.optics import DEFAULT_SIM_OPTICS
from hardware.sim.render import SimRenderer
from hardware.sim.slide import slide_surface_z
from tests.learn_helpers import tiny_model_at_scale
from thinkscope_gui.learn.dataset import PatchDataset, Tile, aligned_origins
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.learn.meta import Normalisation
from thinkscope_gui.learn.models import bicubic, build_model, out_size, resample
from thinkscope_gui.learn.sources import StorePairSource
from thinkscope_gui.learn.train import TrainConfig, Trainer
from thinkscope_gui.pairs.engine import AcquisitionEngine, RunState
from thinkscope_gui.pairs.plan import AcquisitionPlan, choose_patch_px
from thinkscope_gui.pairs.registration import Registration, cut_patches, register
from thinkscope_gui.pairs.store import PairStore

torch.set_num_threads(1)
D = DEFAULT_SIM_OPTICS
N = 256


def off_nominal(lr: str, hr: str, lr_factor: float, scale: float) -> dict:
    """Simulator truth with the LR pixel ``lr_factor`` x nominal and the HR pixel making
    the pair's true scale exactly ``scale``."""
    opt = dict(D)
    lp = D[lr].pixel_size_um * lr_factor
    opt[lr] = dataclasses.replace(D[lr], pixel_size_um=lp)
    opt[hr] = dataclasses.replace(D[hr], pixel_size_um=lp / scale)
    return opt


#: (name, LR, HR, simulator optics): nominal 2.5, a calibrated 2.4954 with both pixel
#: sizes 1.5-1.7 % off nominal, and 10x -> 40x (4.0)
SCALES = [
    ("2.5", "40x", "100x", dict(D)),
    ("2.4954", "40x", "100x", off_nominal("40x", "100x", 1.015, 2.4954)),
    ("4.0", "10x", "40x", dict(D)),
]


def truth_lr_px(opt: dict, lr: str, hr: str, lr_stage: tuple[float, float],
                hr_stage: tuple[float, float]) -> tuple[float, float, float]:
    """Where the HR centre truly lands in the LR frame (LR px) and the true rotation."""
    L, H = opt[lr], opt[hr]
    d = np.array([hr_stage[0] + H.true_offset_xy_um[0] - lr_stage[0] - L.true_offset_xy_um[0],
                  hr_stage[1] + H.true_offset_xy_um[1] - lr_stage[1] - L.true_offset_xy_um[1]]
                 ) / L.pixel_size_um
    th = -math.radians(L.true_rotation_deg)
    return (math.cos(th) * d[0] - math.sin(th) * d[1],
            math.sin(th) * d[0] + math.cos(th) * d[1],
            H.true_rotation_deg - L.true_rotation_deg)


# --------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("scale", [2.4995, 2.4954, 2.5, 4.0, 1.5, 5.0, 3.3])
def test_plan_finds_a_patch_at_any_scale(scale: float) -> None:
    lr_px = 0.1625
    side = choose_patch_px((N * lr_px / scale,) * 2, lr_px, scale)
    assert side is not None and side % 2 == 0 and 8 <= side <= N / scale - 16
    assert choose_patch_px((N * lr_px / scale,) * 2, lr_px, scale, 24) == 24


def test_resample_puts_hr_pixel_k_at_its_lr_coordinate() -> None:
    # Keys' cubic (a = -0.5) reproduces a ramp exactly: value = LR column coordinate.
    # torch's a = -0.75 only on average (a symmetric ripple of < 0.05 px, no shift).
    h, w = 20, 30
    ramp = torch.arange(w, dtype=torch.float64).expand(1, 1, h, w).contiguous()
    for s in (2.4954, 2.5, 4.0, 1.5):
        for phase in ((0.0, 0.0), (0.3, -0.4)):
            oh, ow = out_size(h, w, s)
            want = (torch.arange(ow, dtype=torch.float64) + phase[1] + 0.5) / s - 0.5
            inner = slice(int(2 * s) + 2, ow - int(2 * s) - 2)
            y = resample(ramp, s, (oh, ow), phase, a=-0.5)[0, 0, 0]
            torch.testing.assert_close(y[inner], want[inner], atol=1e-9, rtol=0)
            fast = resample(ramp.float(), s, (oh, ow), phase)[0, 0, 0].double()
            d = (fast - want)[inner]
            assert float(d.abs().max()) < 0.05 and abs(float(d.mean())) < 0.01
            # torch's kernels (interpolate / grid_sample) equal the gather with a = -0.75
            gather = resample(ramp, s, (oh, ow), phase, a=-0.7500001)[0, 0, 0]
            assert float((fast - gather).abs().max()) < 1e-3
        x = torch.rand(1, 3, h, w)
        # and it is torch's bicubic where torch's applies (zero phase)
        torch.testing.assert_close(resample(x, s, out_size(h, w, s)), bicubic(x, s),
                                   atol=2e-5, rtol=0)


@pytest.mark.parametrize("scale", [1.5, 2.4954, 2.5, 4.0, 5.0, 3.3])
def test_models_upsample_by_exactly_the_scale(scale: float) -> None:
    for arch in ("fast", "quality"):
        m = build_model(arch, 3, scale, {"feats": 8, "layers": 1} if arch == "fast"
                        else {"feats": 8, "blocks": 1})
        for h, w in ((37, 41), (48, 48)):
            assert m(torch.rand(1, 3, h, w)).shape[-2:] == out_size(h, w, scale)


def _enhancer(scale: float, tile: int) -> Enhancer:
    model, meta = tiny_model_at_scale(scale, seed=0)
    return Enhancer(model, meta, device="cpu", tile=tile)


@pytest.mark.parametrize("scale", [2.4954, 2.5, 4.0])
def test_enhancer_tiles_land_on_the_whole_frame_grid(scale: float) -> None:
    """Tiles cut at any LR offset carry their sub-pixel phase, so a tiled frame equals
    the whole frame (without the phase, tiles at 2.4954 were up to half a pixel off)."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (150, 170, 3), dtype=np.uint8)
    whole = _enhancer(scale, tile=1024).enhance(frame)
    tiled_enh = _enhancer(scale, tile=40)
    assert frame.shape[0] > tiled_enh.tile + 2 * tiled_enh.overlap  # really tiled
    tiled = tiled_enh.enhance(frame)
    assert whole.shape == tiled.shape == (*out_size(150, 170, scale), 3)
    assert whole.dtype == np.uint8
    assert int(np.abs(whole.astype(int) - tiled).max()) <= 1


@pytest.mark.parametrize("scale", [2.4954, 2.4995, 4.0])
def test_cut_patches_resamples_onto_the_exact_grid(scale: float) -> None:
    """Analytic scene, known transform: the HR patch equals the scene on the HR grid."""
    def scene(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # x, y in LR px of the LR frame
        return 100 + 40 * np.sin(0.21 * x + 0.05 * y) + 30 * np.cos(0.17 * y - 0.03 * x)

    h = w = 120
    dx, dy, rot = 3.3, -2.7, 0.4
    hh = hw = int(round(60 * scale))
    r, c = np.mgrid[0:hh, 0:hw].astype(np.float64)
    tx, ty = (c - (hw - 1) / 2) / scale, (r - (hh - 1) / 2) / scale   # LR px from HR centre
    th = math.radians(rot)
    x = (w - 1) / 2 + dx + math.cos(th) * tx - math.sin(th) * ty
    y = (h - 1) / 2 + dy + math.sin(th) * tx + math.cos(th) * ty
    hr = scene(x, y).astype(np.float32)
    lr = np.zeros((h, w), np.float32)
    reg = Registration(dx, dy, rot, 1.0)
    side = 40
    _, hr_patch, (r0, c0) = cut_patches(lr, hr, reg, scale, side)
    m = round(side * scale)
    assert hr_patch.shape == (m, m)
    k = (np.arange(m) + 0.5) / scale - 0.5
    want = scene(c0 + k[None, :], r0 + k[:, None])
    assert float(np.abs(hr_patch - want).max()) < 0.05  # of a 140-level swing


@pytest.mark.parametrize("scale", [2.4954, 2.5, 4.0])
def test_training_patches_stay_aligned_at_any_scale(scale: float) -> None:
    n, p = 60, 12
    # HR = the LR scene (a ramp) at the HR pixel centres, LR coordinate (k + 0.5)/s - 0.5
    lr = np.add.outer(np.arange(n) * 3.0, np.arange(n) * 1.0).astype(np.float32)
    m = round(n * scale)
    k = (np.arange(m) + 0.5) / scale - 0.5
    hr = np.add.outer(k * 3.0, k * 1.0).astype(np.float32)
    tile = Tile(lr=lr, hr=hr, divisor=1.0, key=("t", 0), source="x")
    ds = PatchDataset([tile], scale, Normalisation(mean=[0.0], std=[1.0]), patch=p,
                      length=60, augment=False, seed=2)
    used = set()
    hp = round(p * scale)
    kk = (np.arange(hp) + 0.5) / scale - 0.5
    for i in range(len(ds)):
        xb, yb = ds[i]
        assert yb.shape[-1] == hp
        # every HR pixel equals the scene at its exact position relative to the LR origin
        want = float(xb[0, 0, 0]) + np.add.outer(kk * 3.0, kk * 1.0)
        assert float(np.abs(yb[0].numpy() - want).max()) < 0.02
        used.add(float(xb[0, 0, 0]))
    if scale == 2.4954:  # every LR offset is used, not only the ~1 in 10 near a pixel
        assert ds.subpixel and len(aligned_origins(n, p, scale, 0.5)) >= n - p - 2
        assert len(used) > 30


# ----------------------------------------------------------------------- registration
@pytest.mark.parametrize("name,lr,hr,opt", SCALES, ids=[s[0] for s in SCALES])
def test_registration_error_below_a_quarter_hr_pixel(name: str, lr: str, hr: str,
                                                     opt: dict) -> None:
    renderer = SimRenderer(opt)
    L, H = opt[lr], opt[hr]
    scale = L.pixel_size_um / H.pixel_size_um
    assert scale == pytest.approx(float(name), abs=1e-9)
    errors = []
    for k, (x, y, ex, ey) in enumerate([(5000, 0, 0.0, 0.0), (3179, 3793, 1.3, -0.7),
                                        (-3000, 100, -2.2, 1.9)]):
        z = slide_surface_z(x, y)
        a = renderer.render(x, y, z + L.true_parfocal_z_um, lr, shape=(N, N),
                            rng=np.random.default_rng(k))
        b = renderer.render(x + ex, y + ey, z + H.true_parfocal_z_um, hr, shape=(N, N),
                            rng=np.random.default_rng(k + 99))
        reg = register(a, b, scale)
        tx, ty, trot = truth_lr_px(opt, lr, hr, (x, y), (x + ex, y + ey))
        errors.append(math.hypot(reg.dx_lr - tx, reg.dy_lr - ty) * scale)
        assert abs(reg.rotation_deg - trot) < 0.06
    print(f"scale {name}: registration error (HR px) {np.round(errors, 3).tolist()}")
    assert max(errors) <= 0.25


# ----------------------------------------------------------------------- end to end
@pytest.mark.parametrize("name,lr,hr,opt", SCALES[1:], ids=[s[0] for s in SCALES[1:]])
def test_calibrate_acquire_train_enhance(name: str, lr: str, hr: str, opt: dict,
                                         tmp_path: Path) -> None:
    """Off-nominal stand: calibrated pixel sizes in the profiles, then the whole loop."""
    scope = open_microscope("sim", sensor=(N, N))
    try:
        renderer = scope.core.sim_world.renderer()
        renderer.optics.update({k: opt[k] for k in (lr, hr)})   # the stand's truth
        renderer.clear_cache()
        # calibration result: the measured pixel sizes go into the profiles
        scope.set_profiles({k: scope.profile(k).model_copy(
            update={"pixel_size_um": opt[k].pixel_size_um}) for k in (lr, hr)})
        scale = scope.profile(lr).pixel_size_um / scope.profile(hr).pixel_size_um
        assert scale == pytest.approx(float(name), abs=1e-9)
        out = tmp_path / "pairs.h5"
        plan = AcquisitionPlan(grid=(2, 1), lr_objective=lr, hr_objective=hr,
                               output=str(out))
        plan.validate_against(scope)  # raised PlanError at 2.4954 before
        status = AcquisitionEngine(plan, scope).run()
    finally:
        scope.close()
    assert status.state == RunState.FINISHED, status.message
    assert status.accepted == 2, status.reasons
    errors = []
    with PairStore(out) as s:
        assert s.scale == pytest.approx(scale)
        for i in s.pair_ids():
            side = s.lr(i).shape[0]
            assert s.hr(i).shape[:2] == (round(side * scale),) * 2
            m = s.meta(i)
            tx, ty, _ = truth_lr_px(opt, lr, hr, tuple(m["stage_xy_um"]),
                                    tuple(m["hr_stage_xy_um"]))
            t = m["transform"]
            errors.append(math.hypot(t["dx_lr"] - tx, t["dy_lr"] - ty) * scale)
    print(f"scale {name}: stored pair alignment error (HR px) {np.round(errors, 3).tolist()}")
    assert max(errors) <= 0.25
    model = tmp_path / "m.safetensors"
    cfg = TrainConfig(arch="fast", arch_params={"feats": 8, "layers": 1}, epochs=1,
                      steps_per_epoch=3, batch_size=2, patch=16, threads=1,
                      val_fraction=0.5, out=str(model), command="pytest")
    src = StorePairSource(out)
    st = Trainer(cfg, sources=[src]).run()
    assert st.state == "done", st.message
    enh = Enhancer.load(model, device="cpu")
    assert enh.scale == pytest.approx(scale)
    frame = np.random.default_rng(0).integers(0, 255, (61, 77, 3), dtype=np.uint8)
    y = enh.enhance(frame)
    assert y.shape == (*out_size(61, 77, scale), 3) and y.dtype == np.uint8
