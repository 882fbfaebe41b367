"""`main.py rebuild-models`: rebuild the shipped default models from the committed code
(simulator pairs of every stand, robust augmentation, time-budgeted training, held-out
evaluation); a rebuilt model replaces the shipped one only if it scores better."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from thinkscope_gui.learn.recipes import AUGMENT_RECIPES

if TYPE_CHECKING:
    from thinkscope_gui.learn.rebuild import RebuildRecipe


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rebuild-models", help="rebuild the shipped default models (long)",
                       description="Renders registered 40x/100x pairs of epithelium, "
                       "lymphoid and the line targets on every simulated stand, trains the "
                       "fast model with exposure jitter and orientations and the quality one "
                       "with those, LR noise on half the patches and an amplitude-spectrum "
                       "loss term (60/48 and 72/48 "
                       "ideal/realistic pairs; options below override both), evaluates them "
                       "on held-out "
                       "stroma and writes them with their provenance (git commit, data recipe, "
                       "metrics). `make models` runs it. The full recipe takes about an hour "
                       "on 2 CPU threads.")
    p.add_argument("--out-dir", default=None,
                   help="where default_fast/default_quality.safetensors go "
                   "(default: resources/models)")
    p.add_argument("--arch", default="fast,quality", help="which models (default: both)")
    p.add_argument("--minutes", type=float, default=None, metavar="M",
                   help="training budget per model (default: the recipe's: fast 22, "
                   "quality 24)")
    p.add_argument("--pairs", default=None, metavar="N|STAND=N,...",
                   help="pairs per stand: one number for every stand, or per stand as "
                   "ideal=60,realistic=48 (default: that for fast, 72/48 for quality)")
    p.add_argument("--tissues", default=None, metavar="A,B,...",
                   help="slide regions the pairs are drawn from, in turn (a name given twice "
                   "gets twice the pairs), e.g. epithelium,lymphoid,line_targets (default: "
                   "the recipe's; stroma is held out for the evaluation)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    p.add_argument("--tiny", action="store_true",
                   help="a seconds-long recipe (tests of the command; never ship its models)")
    p.add_argument("--init", default="none", metavar="shipped|PATH|none",
                   help="start each model from the shipped default of its arch, from a model "
                   "file, or from scratch (default: none); a fine-tune uses --lr 3e-4")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default 3e-3 from scratch, 3e-4 with --init)")
    p.add_argument("--augment", choices=AUGMENT_RECIPES, default=None,
                   help="augmentation recipe (default: the recipe's, off for fast: exposure "
                   "jitter and orientations; noisy for quality: those and LR noise on half "
                   "the patches; mild's camera degradations flatten the bar target)")
    p.add_argument("--fft-weight", type=float, default=None, metavar="W",
                   help="weight of the amplitude-spectrum L1 loss term, which keeps fine "
                   "periods (the bar target) from being damped (default: 0 for fast, 0.1 for "
                   "quality)")
    p.add_argument("--loss", choices=("mse", "l1"), default=None,
                   help="pixel loss (default mse; l1 is less dominated by the few large "
                   "errors of noisy targets)")
    p.add_argument("--device", default=None,
                   help="torch device to train on, e.g. cuda (default cpu; the evaluation "
                   "always runs on the CPU)")
    p.add_argument("--keep-rejected", action="store_true",
                   help="keep a rebuild that fails the acceptance rule as "
                   "default_ARCH.rejected.safetensors (to inspect it)")
    p.add_argument("--force", action="store_true",
                   help="replace existing models even when the rebuild scores worse")


def _command_line(args: argparse.Namespace) -> str:
    """The command as given (options that differ from their defaults), for the metadata:
    with the commit it names, the command reproduces the model's recipe."""
    import shlex

    words = ["main.py", "rebuild-models"]
    for opt in ("arch", "minutes", "pairs", "tissues", "threads", "init", "lr", "augment",
                "fft_weight", "loss", "device"):
        value = getattr(args, opt, None)
        if value is not None and not (opt == "arch" and value == "fast,quality") \
                and not (opt == "init" and value == "none"):
            words += [f"--{opt.replace('_', '-')}", str(value)]
    words += [f"--{flag.replace('_', '-')}" for flag in ("tiny", "force", "keep_rejected")
              if getattr(args, flag, False)]
    return shlex.join(words)


def _recipe_from_args(args: argparse.Namespace) -> RebuildRecipe:
    """The rebuild recipe the options describe (ValueError: a bad option, in words)."""
    from dataclasses import replace

    from thinkscope_gui.learn.rebuild import RebuildRecipe

    archs = tuple(a for a in args.arch.split(",") if a)
    recipe = RebuildRecipe.tiny() if args.tiny else RebuildRecipe()
    if args.minutes is not None:
        if args.minutes <= 0:
            raise ValueError("--minutes must be > 0")
        recipe = replace(recipe, minutes={a: args.minutes for a in archs})
    if args.pairs is not None:
        try:
            if "=" in args.pairs:
                per = {k.strip(): max(2, int(v)) for k, v in
                       (item.split("=", 1) for item in args.pairs.split(",") if item)}
                recipe = replace(recipe, stand_pairs=per)
            else:
                recipe = replace(recipe, pairs_per_stand=max(2, int(args.pairs)),
                                 stand_pairs={})
        except ValueError as e:
            raise ValueError(f"--pairs takes N or STAND=N,..., got {args.pairs!r}") from e
        recipe = recipe.without_override("stand_pairs", "pairs_per_stand")
    if getattr(args, "tissues", None) is not None:
        from hardware.sim.slide import REGIONS

        names = tuple(t.strip() for t in args.tissues.split(",") if t.strip())
        bad = [t for t in names if t not in REGIONS or t in ("stroma", "bar_target")]
        if not names or bad:
            raise ValueError(f"--tissues: {', '.join(bad) or 'none given'}: choose from "
                             + ", ".join(r for r in REGIONS if r not in ("stroma", "bar_target"))
                             + " (stroma and the bar target are held out for the evaluation)")
        recipe = replace(recipe, tissues=names).without_override("tissues")
    if args.threads is not None:
        recipe = replace(recipe, threads=max(1, args.threads))
    if args.init not in ("shipped", "none"):
        from pathlib import Path

        if not Path(args.init).is_file():
            raise ValueError(f"--init {args.init}: no such model file")
    recipe = replace(recipe, init=args.init)
    if args.augment is not None:
        recipe = replace(recipe, augment=args.augment).without_override("augment")
    if args.lr is not None:
        if args.lr <= 0:
            raise ValueError("--lr must be > 0")
        recipe = replace(recipe, lr=args.lr, init_lr=args.lr)
    if args.fft_weight is not None:
        if args.fft_weight < 0:
            raise ValueError("--fft-weight must be >= 0")
        recipe = replace(recipe, fft_weight=args.fft_weight).without_override("fft_weight")
    if args.loss is not None:
        recipe = replace(recipe, loss=args.loss).without_override("loss")
    if args.device is not None:
        recipe = replace(recipe, device=args.device)
    return recipe


def run(args: argparse.Namespace) -> int:
    from thinkscope_gui.cli.interrupt import SignalCancel

    with SignalCancel() as sig:
        from thinkscope_gui.learn.modelfile import MODELS_DIR
        from thinkscope_gui.learn.rebuild import rebuild_models

        archs = tuple(a for a in args.arch.split(",") if a)
        bad = [a for a in archs if a not in ("fast", "quality")]
        if bad or not archs:
            print(f"rebuild-models: --arch takes fast and/or quality, got {args.arch!r}",
                  file=sys.stderr)
            return 2
        try:
            recipe = _recipe_from_args(args)
        except ValueError as e:
            print(f"rebuild-models: {e}", file=sys.stderr)
            return 2
        out_dir = args.out_dir or str(MODELS_DIR)
        from thinkscope_gui.cli.interrupt import run_job
        from thinkscope_gui.jobs import FinishReason, FunctionJob, JobControl

        command = _command_line(args)  # recorded in the model metadata

        def body(control: JobControl) -> dict:
            return rebuild_models(out_dir, recipe, archs, force=args.force, command=command,
                                  keep_rejected=args.keep_rejected,
                                  log=lambda m: print(m, flush=True),
                                  cancel=lambda: control.cancel_requested)

        job = FunctionJob("model rebuild", body)  # the one runner, like every long job
        status = run_job(job, sig)
        if status.reason == FinishReason.FAILED:
            print(f"rebuild-models: failed: {status.message}", file=sys.stderr)
            return 1
        results = job.result or {}
        if sig.cancelled or status.reason == FinishReason.CANCELLED:
            print(f"cancelled by {sig.name}; the shipped models are unchanged unless named "
                  "above as written")
            return sig.exit_code or 130
        failed = [a for a in archs if results.get(a, {}).get("state") not in
                  ("done", "stopped_early")]
        return 1 if failed else 0
