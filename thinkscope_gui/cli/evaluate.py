"""`main.py evaluate [MODEL]`: score a model file against bicubic and Richardson-Lucy with
the true PSF on held-out simulator tissue (every simulated stand) and on the bar target."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from thinkscope_gui.learn.recipes import AUGMENT_RECIPES

if TYPE_CHECKING:
    from thinkscope_gui.cli.interrupt import SignalCancel


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="score a model vs bicubic and Richardson-Lucy on held-out sim data",
        description="PSNR/SSIM of the model, bicubic and Richardson-Lucy (true 40x PSF, best "
        "iteration count) against the clean and the noisy 100x reference, on a tissue region "
        "the shipped recipe never trains on, at exposure x0.9/1.0/1.1, on each simulated "
        "stand; and the bar-target contrast each recovers, per period.")
    p.add_argument("model", nargs="?", default="quality", metavar="fast|quality|PATH",
                   help="a shipped model or a model file (default: quality)")
    p.add_argument("--stand", default="all", help="ideal, realistic, achromat (a stand no "
                   "default model trains on) or all (default: all the stands the default "
                   "models train on)")
    p.add_argument("--tissue", default="stroma", help="held-out tissue region")
    p.add_argument("--n", type=int, default=6, help="held-out tiles per stand")
    p.add_argument("--tile", type=int, default=96, help="LR tile side of held-out tiles")
    p.add_argument("--seed", type=int, default=2024, help="seed of the held-out positions")
    p.add_argument("--texture-seed", type=int, default=0,
                   help="re-draw the simulator's fine textures (chromatin, granules) with "
                   "this seed: a model that learned the textures rather than the optics "
                   "scores differently (default 0: the slide's own)")
    p.add_argument("--gains", default="0.9,1,1.1", help="exposure factors to test")
    p.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tta", action="store_true",
                   help="score the model's 8-orientation self-ensemble (enhance --tta) too")
    p.add_argument("--transfer", action="store_true",
                   help="instead: the transfer-learning check. Fine-tune the model on "
                   "--transfer-pairs pairs of the stand given by --stand (default achromat, "
                   "one no default model was trained on), train the same pairs from scratch for as "
                   "many steps, and score the model, the fine-tune and the scratch run on "
                   "that stand's held-out tissue")
    p.add_argument("--transfer-pairs", type=int, default=16, help="pairs of the check")
    p.add_argument("--transfer-steps", type=int, default=400,
                   help="optimizer steps of each run of the check (batch 16)")
    p.add_argument("--transfer-augment", choices=AUGMENT_RECIPES, default=None,
                   help="augmentation of both runs of the check (default: the model's own, "
                   "as recorded in its file: a fine-tune continues the recipe it was built "
                   "with)")


def run(args: argparse.Namespace) -> int:
    from thinkscope_gui.cli.interrupt import SignalCancel

    with SignalCancel() as sig:
        import torch

        from thinkscope_gui.learn.errors import ModelFileError
        from thinkscope_gui.learn.evaluate import evaluate_model, summary_lines
        from thinkscope_gui.learn.infer import Enhancer
        from thinkscope_gui.learn.sim_source import ALL_STANDS, STANDS

        torch.set_num_threads(max(1, args.threads))
        if args.transfer:
            return _transfer(args, sig)
        stands = STANDS if args.stand == "all" else tuple(args.stand.split(","))
        unknown = [s for s in stands if s not in ALL_STANDS]
        if unknown:
            print(f"evaluate: unknown or unavailable stand {', '.join(unknown)}; this build "
                  f"has {', '.join(ALL_STANDS)}", file=sys.stderr)
            return 2
        try:
            gains = tuple(float(g) for g in args.gains.split(",") if g)
        except ValueError:
            print(f"evaluate: --gains must be numbers, got {args.gains!r}", file=sys.stderr)
            return 2
        if args.n < 1 or args.tile < 32:
            print("evaluate: --n must be >= 1 and --tile >= 32", file=sys.stderr)
            return 2
        try:
            enh = Enhancer.load(args.model, device="cpu")
        except ModelFileError as e:
            print(f"evaluate: {e}", file=sys.stderr)
            return 2
        report = evaluate_model(enh, args.tissue, args.n, args.tile, args.seed, stands, gains,
                                texture_seed=args.texture_seed)
        if sig.cancelled:
            return sig.exit_code
        for line in summary_lines(report):
            print(line)
        if args.tta:
            from thinkscope_gui.learn.tta import SelfEnsemble

            tta = evaluate_model(SelfEnsemble(enh), args.tissue, args.n,  # type: ignore[arg-type]
                                 args.tile, args.seed, stands, gains,
                                 texture_seed=args.texture_seed)
            if sig.cancelled:
                return sig.exit_code
            report["tta"] = tta
            print("with --tta (8-orientation self-ensemble):")
            for line in summary_lines(tta)[1:]:
                print(line)
            for stand, per in tta["stands"].items():
                d = {g: m["gain_db_clean"] - report["stands"][stand][g]["gain_db_clean"]
                     for g, m in per.items()}
                print(f"  {stand}: self-ensemble adds " + ", ".join(
                    f"x{g} {v:+.2f} dB" for g, v in d.items()) + " over the plain model")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
            print(f"report: {args.json}")
    return 0


def _transfer(args: argparse.Namespace, sig: SignalCancel) -> int:
    from thinkscope_gui.jobs import Cancelled
    from thinkscope_gui.learn.errors import ModelFileError
    from thinkscope_gui.learn.modelfile import DEFAULT_MODELS, read_meta
    from thinkscope_gui.learn.sim_source import ALL_STANDS
    from thinkscope_gui.learn.transfer import (
        TransferRecipe,
        transfer_check,
        transfer_lines,
    )

    stand = TransferRecipe.stand if args.stand == "all" else args.stand
    if stand not in ALL_STANDS:
        print(f"evaluate: unknown or unavailable stand {stand}; this build has "
              f"{', '.join(ALL_STANDS)}", file=sys.stderr)
        return 2
    if args.transfer_pairs < 2 or args.transfer_steps < 1 or args.n < 1 or args.tile < 32:
        print("evaluate: --transfer-pairs must be >= 2, --transfer-steps >= 1, --n >= 1 and "
              "--tile >= 32", file=sys.stderr)
        return 2
    path = DEFAULT_MODELS.get(args.model, Path(args.model))
    try:
        read_meta(path)
    except (ModelFileError, OSError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 2
    recipe = TransferRecipe(stand=stand, pairs=args.transfer_pairs, steps=args.transfer_steps,
                            eval_tissue=args.tissue, eval_n=args.n, eval_tile=args.tile,
                            eval_seed=args.seed, threads=max(1, args.threads),
                            augment=args.transfer_augment)
    try:
        rep = transfer_check(path, recipe, cancel=lambda: sig.cancelled)
    except Cancelled:
        print("evaluate: transfer check cancelled", file=sys.stderr)
        return sig.exit_code or 130
    for line in transfer_lines(rep):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
        print(f"report: {args.json}")
    return 0
