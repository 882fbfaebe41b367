"""Held-out quality figures on simulated pairs: model vs bicubic vs Richardson-Lucy, and
bar-target contrast. Shared by the quality tests, by `main.py evaluate` and by reports
(`python -m thinkscope_gui.learn.evaluate [MODEL]`).

Held-out means a tissue region the shipped recipe never trains on (stroma), at positions
drawn with their own seed; ``gain`` rescales the input and both references (an exposure
change of the whole stand, which the model must follow as bicubic does)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .baselines import bar_modulation, bicubic_upsample, richardson_lucy_baseline
from .infer import Enhancer
from .metrics import psnr, ssim, to_tensor01
from .normalise import divisor_for, from_unit, to_unit
from .sim_source import STANDS, SimPairSource, ideal_renderer, render_pair

BORDER = 8  #: HR pixels ignored at tile edges (every method pays the same edge effects)


def _score(pred01: np.ndarray, ref: np.ndarray, divisor: float) -> tuple[float, float]:
    """PSNR/SSIM of a [0, 1] prediction against a camera frame of full scale ``divisor``."""
    a = to_tensor01(pred01.astype(np.float32))[..., BORDER:-BORDER, BORDER:-BORDER]
    b = to_tensor01(ref, divisor)[..., BORDER:-BORDER, BORDER:-BORDER]
    return psnr(a, b), float(ssim(a, b))


def _gained(img: np.ndarray, gain: float, div: float) -> np.ndarray:
    if gain == 1.0:
        return img
    return from_unit(np.clip(to_unit(img, div) * gain, 0, 1), img.dtype, div)


def evaluate_tissue(enh: Enhancer, tissue: str = "stroma", n: int = 6, tile: int = 96,
                    seed: int = 2024, rl_iterations: tuple[int, ...] = (2, 5, 10, 20),
                    gain: float = 1.0, stand: str = "ideal",
                    texture_seed: int = 0) -> dict[str, float]:
    """Mean PSNR/SSIM over n held-out pairs of one tissue. Inputs are noisy 40x frames;
    references are the noise-free 100x frames (`*_clean`) and the noisy 100x frames
    (`*_noisy`, whose shot noise caps every method near 44 dB). RL gets its best
    iteration count (chosen on these very tiles, in its favour). ``texture_seed`` draws
    the slide's fine textures anew (same spectra): a model's gain should not depend on it."""
    noisy = SimPairSource(n, tissues=[tissue], tile=tile, seed=seed, stand=stand,
                          texture_seed=texture_seed)
    clean = SimPairSource(n, tissues=[tissue], tile=tile, seed=seed, noise=False, stand=stand,
                          texture_seed=texture_seed)
    acc: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        acc.setdefault(key, []).append(value)

    for i in noisy.pair_ids():
        div = divisor_for(noisy.lr(i).dtype, noisy.bit_depth)
        lr, hr_noisy, hr_clean = (_gained(a, gain, div)
                                  for a in (noisy.lr(i), noisy.hr(i), clean.hr(i)))
        preds = {"model": to_unit(enh.enhance(lr, bit_depth=noisy.bit_depth), div),
                 "bicubic": bicubic_upsample(lr, enh.scale, div)}
        for it in rl_iterations:
            preds[f"rl{it}"] = richardson_lucy_baseline(lr, enh.scale, iterations=it,
                                                        divisor=div)
        for name, p in preds.items():
            for ref_name, ref in (("clean", hr_clean), ("noisy", hr_noisy)):
                ps, ss = _score(p, ref, div)
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
                  lr_size: int = 64, seed: int = 5,
                  rl_iterations: tuple[int, ...] = (10, 20, 40)) -> list[dict[str, Any]]:
    """Modulation at the bar frequency for 40x bicubic, Richardson-Lucy (true PSF, its
    best iteration count), model and 100x, per bar group."""
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
                     # RL's best iteration count for contrast (in its favour)
                     "rl": max(bar_modulation(richardson_lucy_baseline(lr, enh.scale,
                                                                       iterations=it),
                                              per, g.orientation) for it in rl_iterations),
                     "model": bar_modulation(enh.enhance(lr), per, g.orientation),
                     "hr": bar_modulation(hr, per, g.orientation)})
    return rows


def evaluate_model(enh: Enhancer, tissue: str = "stroma", n: int = 6, tile: int = 96,
                   seed: int = 2024, stands: tuple[str, ...] = ("ideal",),
                   gains: tuple[float, ...] = (0.9, 1.0, 1.1),
                   rl_iterations: tuple[int, ...] = (2, 5, 10, 20),
                   periods_um: tuple[float, ...] = (0.36, 0.40),
                   texture_seed: int = 0) -> dict[str, Any]:
    """The full report of `main.py evaluate`: per stand and exposure gain, PSNR/SSIM of the
    model, bicubic and RL (true PSF) against the clean and the noisy 100x reference; and
    bar contrast per period, with the fraction of the 100x contrast each method recovers."""
    report: dict[str, Any] = {"model": str(enh.path) if getattr(enh, "path", None) else "",
                              "arch": enh.meta.arch, "tissue": tissue, "n": n, "tile": tile,
                              "seed": seed, "texture_seed": texture_seed, "stands": {}}
    for stand in stands:
        per_gain = {}
        for g in gains:
            its = rl_iterations if g == 1.0 else tuple(sorted({rl_iterations[0],
                                                               rl_iterations[-1]}))
            per_gain[f"{g:g}"] = evaluate_tissue(enh, tissue, n, tile, seed, its, g, stand,
                                                 texture_seed=texture_seed)
        report["stands"][stand] = per_gain
    bars = evaluate_bars(enh, periods_um, rl_iterations=tuple(
        it for it in (10, 20, 40) if it <= 2 * max(rl_iterations)) or (10,))
    for r in bars:
        ref = r["hr"] or 1e-9
        r["recovered_model"] = r["model"] / ref
        r["recovered_bicubic"] = r["bicubic"] / ref
        if "rl" in r:
            r["recovered_rl"] = r["rl"] / ref
    report["bars"] = bars
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The human-readable table of an evaluate_model() report."""
    lines = [f"model {report['model'] or '(default)'} ({report['arch']}): held-out "
             f"{report['tissue']}, {report['n']} tiles of {report['tile']} px, seed "
             f"{report['seed']}" + (f", texture seed {report['texture_seed']}"
                                    if report.get("texture_seed") else "")]
    for stand, per_gain in report["stands"].items():
        for g, m in per_gain.items():
            lines.append(
                f"  {stand:9s} exposure x{g:4s} vs clean 100x: model {m['model_psnr_clean']:.2f} "
                f"dB / SSIM {m['model_ssim_clean']:.4f}, bicubic {m['bicubic_psnr_clean']:.2f}"
                f" / {m['bicubic_ssim_clean']:.4f}, RL {m['rl_best_psnr_clean']:.2f} / "
                f"{m['rl_best_ssim_clean']:.4f} -> gain {m['gain_db_clean']:+.2f} dB; vs noisy"
                f" 100x: model {m['model_psnr_noisy']:.2f}, bicubic "
                f"{m['bicubic_psnr_noisy']:.2f}, RL {m['rl_best_psnr_noisy']:.2f}")
    for r in report["bars"]:
        rl = f", RL {r['recovered_rl']:.2f}" if "recovered_rl" in r else ""
        lines.append(f"  bars {r['period_um']:.2f} µm {r['orientation']}: contrast recovered "
                     f"(of 100x) model {r['recovered_model']:.2f}, bicubic "
                     f"{r['recovered_bicubic']:.2f}{rl}")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    enh = Enhancer.load(Path(argv[0]) if argv else None, device="cpu")
    report = evaluate_model(enh, stands=tuple(s for s in STANDS if s != "realistic") or
                            ("ideal",))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
