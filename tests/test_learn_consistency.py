"""Consistency map: invented detail shows up, faithful enhancement does not."""

from __future__ import annotations

import numpy as np

from thinkscope_gui.learn.consistency import consistency_map
from thinkscope_gui.learn.sim_source import SimPairSource


def test_consistency_flags_invented_detail_only_where_it_is() -> None:
    src = SimPairSource(1, tile=64, seed=3)
    lr, hr = src.lr(0), src.hr(0)
    px = (src.lr_profile.pixel_size_um, src.hr_profile.pixel_size_um)
    truth = consistency_map(lr, hr, src.lr_profile.na, *px)
    fake = hr.copy()
    fake[100:125, 100:125] = 20                  # a dark blob the 40x never saw
    faked = consistency_map(lr, fake, src.lr_profile.na, *px)
    assert truth.shape == lr.shape[:2]
    assert truth.max() < 0.05                     # the real 100x image is consistent
    blob = faked[40:50, 40:50].mean()             # LR pixels of the blob (HR 100..125 / 2.5)
    assert blob > 10 * truth.mean()
    assert np.abs(faked[:20, :20] - truth[:20, :20]).max() < 0.01   # far away: unchanged


def test_enhancer_shortcut_matches_and_default_model_is_consistent() -> None:
    from thinkscope_gui.learn import Enhancer

    enh = Enhancer.load(None, device="cpu")
    src = SimPairSource(1, tissues=["stroma"], tile=64, seed=9)
    lr = src.lr(0)
    out = enh.enhance(lr)
    m = enh.consistency(lr, out)
    assert m.shape == lr.shape[:2]
    assert m.mean() < 0.02          # the default model does not invent much on unseen tissue
