"""Transfer-learning check (issue 11): does fine-tuning a default model on a few pairs of a
stand it was not trained on beat both that model as it is and the same pairs trained from
scratch, on that stand's held-out tissue?

Why it matters: a lab that brings its own stand has a few dozen pairs, not thousands. The
shipped models are worth shipping only if starting from them with those pairs beats
starting from nothing. Both runs get the same pairs, steps, batch and augmentation; only
the start (and the peak learning rate: a fine-tune must not wipe what it starts from)
differs. `main.py evaluate --transfer` reports it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from thinkscope_gui.jobs import Cancelled

__all__ = ["TransferRecipe", "transfer_check", "transfer_lines"]


@dataclass(frozen=True)
class TransferRecipe:
    """The check's data and training (defaults: the figures in the README)."""

    #: a stand the base model was not trained on (sim_source.HELD_OUT_STANDS: the default
    #: models train on the ideal and the realistic stand)
    stand: str = "achromat"
    pairs: int = 16                         #: training pairs of that stand
    tissues: tuple[str, ...] = ("epithelium", "lymphoid")
    tile: int = 128
    steps: int = 400                        #: optimizer steps of each run (one epoch)
    batch_size: int = 16
    patch: int = 48
    lr_finetune: float = 1e-3
    lr_scratch: float = 3e-3
    seed: int = 3
    eval_tissue: str = "stroma"             #: held out of both runs
    eval_n: int = 4
    eval_tile: int = 96
    eval_seed: int = 2024
    threads: int = 2
    #: augmentation of both runs ("robust", "mild", "off"); None: the base model's own (its
    #: train_config's, "robust" when it has none). A fine-tune continues the recipe its model
    #: was built with: the shipped models are built with "off", and 400 steps of the robust
    #: recipe's camera degradations on 16 pairs cost the quality model 0.09-0.17 dB
    augment: str | None = None


def recipe_augment(base: Path, recipe: TransferRecipe) -> str:
    """The augmentation both runs of the check use (see TransferRecipe.augment)."""
    from .modelfile import read_meta

    if recipe.augment is not None:
        return recipe.augment
    return str(read_meta(base).train_config.get("augment") or "robust")


def _train(base: Path | None, arch: str, recipe: TransferRecipe, augment: str, out: Path,
           cancel: Callable[[], bool] | None = None) -> Path:
    from .errors import TrainingError
    from .sim_source import SimPairSource
    from .train import TrainConfig, Trainer

    src = SimPairSource(recipe.pairs, tissues=list(recipe.tissues), tile=recipe.tile,
                        seed=recipe.seed, stand=recipe.stand)
    cfg = TrainConfig(arch=arch, epochs=1, steps_per_epoch=recipe.steps,
                      batch_size=recipe.batch_size, patch=recipe.patch,
                      lr=recipe.lr_finetune if base else recipe.lr_scratch, loss="mse",
                      val_fraction=0.0, seed=recipe.seed, threads=recipe.threads, augment=augment,
                      warm_start=str(base) if base else None, out=str(out),
                      checkpoint=str(out) + ".ckpt", command="transfer check")
    status = Trainer(cfg, sources=[src]).run_polled(cancel)
    Path(cfg.checkpoint or "").unlink(missing_ok=True)
    if status.state == "cancelled":
        raise Cancelled("transfer check cancelled")
    if status.state != "done" or not out.is_file():
        raise TrainingError(f"transfer check: training ended {status.state}: {status.message}")
    return out


def _gain(path: Path, recipe: TransferRecipe) -> dict[str, float]:
    from .evaluate import evaluate_tissue
    from .infer import Enhancer

    m = evaluate_tissue(Enhancer.load(path, device="cpu"), recipe.eval_tissue, recipe.eval_n,
                        recipe.eval_tile, recipe.eval_seed, (2,), 1.0, recipe.stand)
    return {"psnr_clean": m["model_psnr_clean"], "bicubic_psnr_clean": m["bicubic_psnr_clean"],
            "gain_db_clean": m["gain_db_clean"], "gain_db_noisy": m["gain_db_noisy"]}


def transfer_check(base: str | Path, recipe: TransferRecipe | None = None,
                   work_dir: str | Path | None = None,
                   cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Score the base model, the base fine-tuned on ``recipe.pairs`` pairs of
    ``recipe.stand``, and the same pairs trained from scratch, on held-out tissue of that
    stand. Returns {"base"|"finetuned"|"scratch": gains, "recipe", "holds"}; raises
    jobs.Cancelled (the one cancellation) when ``cancel()`` turns true during training."""
    import torch

    from .modelfile import read_meta

    recipe = recipe or TransferRecipe()
    torch.set_num_threads(max(1, recipe.threads))
    base = Path(base)
    arch = read_meta(base).arch
    augment = recipe_augment(base, recipe)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        ft = _train(base, arch, recipe, augment, Path(tmp) / "finetuned.safetensors", cancel)
        sc = _train(None, arch, recipe, augment, Path(tmp) / "scratch.safetensors", cancel)
        out = {"base": _gain(base, recipe), "finetuned": _gain(ft, recipe),
               "scratch": _gain(sc, recipe)}
    g = {k: v["gain_db_clean"] for k, v in out.items()}
    return {**out, "model": str(base), "arch": arch,
            "recipe": {**asdict(recipe), "augment": augment},
            "holds": bool(g["finetuned"] > g["base"] and g["finetuned"] > g["scratch"])}


def transfer_lines(rep: dict[str, Any]) -> list[str]:
    """Human-readable lines of a transfer_check() report."""
    r = rep["recipe"]
    lines = [f"transfer check: {rep['model']} ({rep['arch']}) on the {r['stand']} stand, "
             f"{r['pairs']} pairs of {', '.join(r['tissues'])}, {r['steps']} steps of "
             f"{r['batch_size']}, augmentation {r['augment']}; held-out {r['eval_tissue']}, "
             f"{r['eval_n']} tiles of {r['eval_tile']} px"]
    for k, label in (("base", "default model as is"),
                     ("finetuned", f"fine-tuned (lr {r['lr_finetune']:g})"),
                     ("scratch", f"same pairs from scratch (lr {r['lr_scratch']:g})")):
        m = rep[k]
        lines.append(f"  {label:36s} {m['psnr_clean']:.2f} dB vs clean 100x (bicubic "
                     f"{m['bicubic_psnr_clean']:.2f}) -> gain {m['gain_db_clean']:+.2f} dB")
    lines.append("  fine-tuning beats both: " + ("yes" if rep["holds"] else "NO"))
    return lines
