"""The rebuild's acceptance rule and its augmentation recipe, on measured figures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

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
