"""The rebuild's acceptance rule and its augmentation recipe, on measured figures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from thinkscope_gui.learn.augment import Augmentations, augmentations_for
from thinkscope_gui.learn.rebuild import RebuildRecipe, better, rejections


def rep(ideal: float, realistic: float, arch: str = "fast",
        bars: tuple[float, ...] = ()) -> dict:
    """A report of evaluate_model's shape: worst-exposure gains and bar rows (bicubic 0.2)."""
    return {"arch": arch,
            "stands": {"ideal": {"0.9": {"gain_db_clean": ideal + 0.05},
                                 "1": {"gain_db_clean": ideal}},
                       "realistic": {"1": {"gain_db_clean": realistic}}},
            "bars": [{"period_um": 0.40, "orientation": o, "recovered_model": m,
                      "recovered_bicubic": 0.2}
                     for o, m in zip(("h", "v")[:len(bars)], bars, strict=True)]}


def test_a_both_stand_model_that_lifts_the_worst_stand_and_keeps_the_floor_is_accepted() -> None:
    # last session's figures (ideal/realistic, worst exposure): shipped fast vs a
    # both-stand fine-tune; the old rule refused it for 0.31 dB on the ideal stand
    assert better(rep(2.61, 1.94), rep(2.92, 1.28))
    assert rejections(rep(2.61, 1.94), rep(2.92, 1.28)) == []


def test_the_worst_stand_must_improve() -> None:
    why = rejections(rep(3.5, 1.20), rep(2.92, 1.28))
    assert len(why) == 1 and "worst stand" in why[0]
    assert not better(rep(2.92, 1.28), rep(2.92, 1.28))


def test_a_stand_may_not_fall_below_the_issue_floor_it_met() -> None:
    # quality: the robust 50-min fine-tune (+2.91/+2.86) against the shipped +4.07/+1.99:
    # the worst stand improves, but the ideal stand drops below +3 dB
    why = rejections(rep(2.91, 2.86, "quality"), rep(4.07, 1.99, "quality"))
    assert len(why) == 1 and why[0].startswith("ideal") and "floor" in why[0]
    # the same drop above the floor is a margin given up, not the target
    assert better(rep(3.2, 2.86, "quality"), rep(4.07, 1.99, "quality"))
    # a stand already below the floor may still not lose more than 0.1 dB
    assert not better(rep(1.5, 1.6), rep(1.8, 1.4))
    assert better(rep(1.75, 1.6), rep(1.8, 1.4))


def test_a_model_that_flattens_the_bars_is_refused() -> None:
    old = rep(4.07, 1.99, "quality", bars=(0.49, 0.52))
    why = rejections(rep(3.5, 2.86, "quality", bars=(0.05, 0.07)), old)
    assert len(why) == 2 and all("flattened" in w for w in why)
    # at least 1.3x bicubic (0.26) is enough, even below the existing model
    assert better(rep(3.5, 2.86, "quality", bars=(0.27, 0.30)), old)
    # below 1.3x bicubic but no worse than the existing model is enough too
    assert better(rep(3.5, 2.86, "quality", bars=(0.25, 0.30)),
                  rep(4.07, 1.99, "quality", bars=(0.24, 0.22)))


def test_mild_recipe_degrades_few_lr_patches_and_keeps_hr() -> None:
    aug = augmentations_for("mild", 0.5)
    assert aug == Augmentations.mild(0.5) and RebuildRecipe().augment == "mild"
    base = Augmentations(intensity=0.0, stain=0.0, dihedral=False)
    rng = np.random.default_rng(0)
    lr = rng.uniform(0.3, 0.7, (32, 32, 3)).astype(np.float32)
    hr = rng.uniform(0.3, 0.7, (80, 80, 3)).astype(np.float32)
    changed = {}
    for name, a in (("robust", base),
                    ("mild", replace(Augmentations.mild(0.0), stain=0.0, dihedral=False))):
        r = np.random.default_rng(1)
        outs = [a.apply(lr, hr, r) for _ in range(200)]
        assert all(np.array_equal(h, hr) for _, h in outs)  # LR-only degradations
        changed[name] = np.mean([not np.allclose(x, lr, atol=1e-6) for x, _ in outs])
    assert changed["robust"] > 0.95          # noise on every patch
    assert 0.2 < changed["mild"] < 0.5       # noise 25 %, JPEG 5 %, Bayer 5 %


def test_noisy_recipe_adds_only_zero_mean_lr_noise_to_half_the_patches() -> None:
    """"noisy" must not blur (no defocus, Bayer or JPEG: they flatten the bar target): a
    changed patch differs from the input by zero-mean noise of at most sigma 0.02, and
    about half the patches stay exactly as they were."""
    a = replace(augmentations_for("noisy", 0.0), dihedral=False)
    rng = np.random.default_rng(0)
    lr = rng.uniform(0.3, 0.7, (32, 32, 3)).astype(np.float32)
    hr = rng.uniform(0.3, 0.7, (80, 80, 3)).astype(np.float32)
    r = np.random.default_rng(2)
    outs = [a.apply(lr, hr, r) for _ in range(400)]
    assert all(np.array_equal(h, hr) for _, h in outs)
    noisy = [x - lr for x, _ in outs if not np.allclose(x, lr, atol=1e-7)]
    assert 0.4 < len(noisy) / len(outs) < 0.6
    sigmas = np.array([d.std() for d in noisy])
    assert sigmas.max() < 0.02 and sigmas.mean() > 0.004
    assert all(abs(float(d.mean())) < 4 * d.std() / np.sqrt(d.size) + 1e-6 for d in noisy)


def test_fft_loss_charges_damped_fine_periods_not_phase() -> None:
    """The amplitude-spectrum term (rebuild --fft-weight) exists to stop a pixel loss from
    damping fine periods: half the contrast of a near-cutoff grating costs it, a shifted
    grating of full contrast does not (a pixel loss charges the shift far more)."""
    import torch
    import torch.nn.functional as F

    from thinkscope_gui.learn.metrics import fft_loss

    x = torch.arange(64, dtype=torch.float32)
    period = 64 / 22                                  # 2.9 px, like the 0.36 µm bars
    bars = lambda amp, shift=0.0: (0.5 + amp * torch.cos(  # noqa: E731
        2 * torch.pi * (x - shift) / period)).expand(1, 1, 64, 64)
    target, damped, shifted = bars(0.2), bars(0.1), bars(0.2, period / 2)
    assert float(fft_loss(target, target)) == 0.0
    assert float(fft_loss(damped, target)) > 1e-3
    assert float(fft_loss(shifted, target)) < 1e-3 * float(fft_loss(damped, target))
    assert float(F.mse_loss(shifted, target)) > 10 * float(F.mse_loss(damped, target))


def test_the_recorded_command_reproduces_the_recipe() -> None:
    """The model metadata's command names every option that differs from the default, so
    with the recorded commit it rebuilds the same recipe."""
    import main
    from thinkscope_gui.cli.rebuild_models import _command_line

    args = main.build_parser().parse_args(
        ["rebuild-models", "--arch", "quality", "--init", "shipped", "--augment", "off",
         "--fft-weight", "0.1", "--pairs", "ideal=84,realistic=12", "--out-dir", "/tmp/x"])
    assert _command_line(args) == ("main.py rebuild-models --arch quality --pairs "
                                   "ideal=84,realistic=12 --init shipped --augment off "
                                   "--fft-weight 0.1")


def test_the_quality_recipe_is_the_shipped_one_unless_an_option_overrides_it() -> None:
    """`main.py rebuild-models` trains the quality model as the shipped one was built
    (exposure + orientations + LR noise on half the patches, fft term, 72/48 pairs) and the
    fast one as the shipped one too (exposure + orientations, 60/48 pairs);
    an option given on the command line applies to both."""
    import main
    from thinkscope_gui.cli.rebuild_models import _recipe_from_args

    q = RebuildRecipe().for_arch("quality")
    assert (q.augment, q.fft_weight, q.stand_pairs) == ("noisy", 0.1,
                                                       {"ideal": 72, "realistic": 48})
    assert q.tissues == ("epithelium", "lymphoid", "line_targets")
    f = RebuildRecipe().for_arch("fast")
    assert (f.augment, f.fft_weight, f.stand_pairs) == ("off", 0.0,
                                                       {"ideal": 60, "realistic": 48})
    assert f.tissues == ("epithelium", "lymphoid", "line_targets")
    args = main.build_parser().parse_args(["rebuild-models", "--augment", "mild",
                                           "--pairs", "ideal=60,realistic=36"])
    r = _recipe_from_args(args).for_arch("quality")
    assert (r.augment, r.fft_weight, r.stand_pairs) == ("mild", 0.1,
                                                       {"ideal": 60, "realistic": 36})
    f = _recipe_from_args(args).for_arch("fast")
    assert (f.augment, f.stand_pairs) == ("mild", {"ideal": 60, "realistic": 36})
    assert RebuildRecipe.tiny().for_arch("quality").stand_pairs == {}


def test_loss_option_sets_the_pixel_loss_of_every_model_and_is_recorded() -> None:
    """`--loss l1` replaces the recipe's MSE pixel loss for each architecture built, and the
    recorded command names it (so the metadata reproduces the run)."""
    import main
    from thinkscope_gui.cli.rebuild_models import _command_line, _recipe_from_args

    assert RebuildRecipe().for_arch("quality").loss == "mse"
    args = main.build_parser().parse_args(["rebuild-models", "--arch", "quality",
                                           "--loss", "l1"])
    r = _recipe_from_args(args)
    assert {r.for_arch(a).loss for a in ("fast", "quality")} == {"l1"}
    assert _command_line(args) == "main.py rebuild-models --arch quality --loss l1"


def test_tissues_option_sets_the_regions_and_refuses_the_held_out_ones() -> None:
    import main
    from thinkscope_gui.cli.rebuild_models import _command_line, _recipe_from_args

    args = main.build_parser().parse_args(
        ["rebuild-models", "--arch", "quality", "--tissues", "epithelium,lymphoid,line_targets"])
    r = _recipe_from_args(args).for_arch("quality")
    assert r.tissues == ("epithelium", "lymphoid", "line_targets")
    assert "--tissues epithelium,lymphoid,line_targets" in _command_line(args)
    for bad in ("stroma", "bar_target", "nowhere", ","):
        args = main.build_parser().parse_args(["rebuild-models", "--tissues", bad])
        with pytest.raises(ValueError, match="--tissues"):
            _recipe_from_args(args)


def test_a_rebuild_below_bicubic_on_its_robustness_set_is_refused() -> None:
    def rep(realistic: float, robust: dict | None = None) -> dict:
        r = {"arch": "quality", "stands": {"ideal": {"1": {"gain_db_clean": 3.5}},
                                           "realistic": {"1": {"gain_db_clean": realistic}}}}
        if robust is not None:
            r["robustness"] = robust
        return r

    old = rep(2.3)
    assert better(rep(3.5, {"robust_min_gain_db": 1.2, "robust_below_bicubic": 0.0}), old)
    why = rejections(rep(3.5, {"robust_gain_db_noise": -1.0, "robust_gain_db_jpeg": 0.4,
                               "robust_min_gain_db": -1.0, "robust_below_bicubic": 1.0}), old)
    assert why == ["below bicubic on the robustness set (noise -1.00 dB)"]
    assert better(rep(3.5), old)  # reports without robustness figures (older files)
