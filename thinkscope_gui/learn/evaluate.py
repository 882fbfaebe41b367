"""Held-out quality figures on simulated pairs: model vs bicubic vs Richardson-Lucy, and
bar-target contrast. Shared by the quality tests and by reports (`python -m
thinkscope_gui.learn.evaluate [MODEL]`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .baselines import bar_modulation, bicubic_upsample, richardson_lucy_baseline
from .infer import Enhancer
from .metrics import psnr, ssim, to_tensor01
from .normalise import divisor_for, to_unit
from .sim_source import SimPairSource, ideal_renderer, render_pair

BORDER = 8  #: HR pixels ignored at tile edges (every method pays the same edge effects)


def _score(pred01: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    a = to_tensor01(pred01.astype(np.float32))[..., BORDER:-BORDER, BORDER:-BORDER]
    b = to_tensor01(ref)[..., BORDER:-BORDER, BORDER:-BORDER]
    return psnr(a, b), float(ssim(a, b))


def evaluate_tissue(enh: Enhancer, tissue: str = "stroma", n: int = 6, tile: int = 96,
                    seed: int = 2024, rl_iterations: tuple[int, ...] = (2, 5, 10, 20)
                    ) -> dict[str, float]:
    """Mean PSNR/SSIM over n held-out pairs of one tissue. Inputs are noisy 40x frames;
    references are the noise-free 100x frames (`*_clean`) and the noisy 100x frames
    (`*_noisy`, whose shot noise caps every method near 44 dB). RL gets its best
    iteration count (chosen on these very tiles, in its favour)."""
    noisy = SimPairSource(n, tissues=[tissue], tile=tile, seed=seed)
    clean = SimPairSource(n, tissues=[tissue], tile=tile, seed=seed, noise=False)
    acc: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        acc.setdefault(key, []).append(value)

    for i in noisy.pair_ids():
        lr, hr_noisy, hr_clean = noisy.lr(i), noisy.hr(i), clean.hr(i)
        div = divisor_for(lr.dtype, noisy.bit_depth)
        preds = {"model": to_unit(enh.enhance(lr, bit_depth=noisy.bit_depth), div),
                 "bicubic": bicubic_upsample(lr, enh.scale, div)}
        for it in rl_iterations:
            preds[f"rl{it}"] = richardson_lucy_baseline(lr, enh.scale, iterations=it)
        for name, p in preds.items():
            for ref_name, ref in (("clean", hr_clean), ("noisy", hr_noisy)):
                ps, ss = _score(p, ref)
                add(f"{name}_psnr_{ref_name}", ps)
                add(f"{name}_ssim_{ref_name}", ss)
    out = {k: float(np.mean(v)) for k, v in acc.items()}
    for ref_name in ("clean", "noisy"):
        best = max(rl_iterations, key=lambda it: out[f"rl{it}_psnr_{ref_name}"])
        out[f"rl_best_psnr_{ref_name}"] = out[f"rl{best}_psnr_{ref_name}"]
        out[f"rl_best_ssim_{ref_name}"] = out[f"rl{best}_ssim_{ref_name}"]
        out[f"rl_best_iterations_{ref_name}"] = float(best)
        out[f"gain_db_{ref_name}"] = out[f"model_psnr_{ref_name}"] - out[
            f"bicubic_psnr_{ref_name}"]
    return out


def evaluate_bars(enh: Enhancer, periods_um: tuple[float, ...] = (0.36, 0.40),
                  lr_size: int = 64, seed: int = 5) -> list[dict[str, Any]]:
    """Modulation at the bar frequency for 40x bicubic, model and 100x, per bar group."""
    from hardware.sim.slide import bar_groups

    renderer = ideal_renderer(enh.lr_profile.label, enh.hr_profile.label)
    hr_px = enh.meta.hr_pixel_size_um
    rows = []
    for g in bar_groups():
        if not any(abs(g.period_um - p) < 1e-6 for p in periods_um):
            continue
        lr, hr = render_pair(renderer, *g.center_xy_um, (lr_size, lr_size), enh.scale,
                             enh.lr_profile.label, enh.hr_profile.label, seed=seed)
        per = g.period_um / hr_px
        rows.append({"period_um": g.period_um, "orientation": g.orientation,
                     "bicubic": bar_modulation(bicubic_upsample(lr, enh.scale), per,
                                               g.orientation),
                     "model": bar_modulation(enh.enhance(lr), per, g.orientation),
                     "hr": bar_modulation(hr, per, g.orientation)})
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    enh = Enhancer.load(Path(argv[0]) if argv else None, device="cpu")
    report = {"tissue_stroma": evaluate_tissue(enh), "bars": evaluate_bars(enh)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
