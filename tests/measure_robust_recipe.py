"""Measurement (not a test): which augmentation recipe generalises (issue 11).

Trains the fast model on ONE simulator tissue (epithelium) with each recipe, the same
short schedule, then scores it on an unseen tissue (stroma) at exposure x0.9 / x1.0 / x1.1
against the clean 100x reference. Prints the gain over bicubic per recipe.
    PYTHONPATH=. python tests/measure_robust_recipe.py [EPOCHS] [STEPS]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from thinkscope_gui.learn.evaluate import evaluate_tissue
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.learn.sim_source import SimPairSource
from thinkscope_gui.learn.train import TrainConfig, Trainer

VARIANTS = {  # Augmentations overrides tried while tuning the "robust" recipe
    "hed-only": dict(noise=0.0, jpeg=0.0, bayer=0.0, defocus=0.0),
    "mild": dict(noise=0.01, jpeg=0.1, bayer=0.1, defocus=0.0),
    "mild+defocus": dict(noise=0.01, jpeg=0.1, bayer=0.1, defocus=0.1, defocus_sigma=0.4),
}
RECIPES = {"no-aug (old CLI default)": dict(intensity_jitter=0.0, augment="off"),
           "jitter 0.5 only": dict(intensity_jitter=0.5, augment="off"),
           "robust (new default)": dict(intensity_jitter=0.5, augment="robust")}


def main() -> None:
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    torch.set_num_threads(1)
    recipes = dict(RECIPES)
    if len(sys.argv) > 3:  # variants of the robust recipe: measure_robust_recipe.py E S a,b
        import thinkscope_gui.learn.train as train_mod
        from thinkscope_gui.learn.augment import Augmentations

        recipes = {}
        for v in sys.argv[3].split(","):
            recipes[v] = dict(intensity_jitter=0.5, augment="robust", _variant=v)
        real = train_mod.augmentations_for
    src = SimPairSource(16, tissues=["epithelium"], tile=96, seed=3)
    tmp = Path(tempfile.mkdtemp())
    for name, over in recipes.items():
        over = dict(over)
        variant = over.pop("_variant", None)
        if variant:
            train_mod.augmentations_for = (  # type: ignore[assignment]
                lambda r, i, v=variant: Augmentations(intensity=i, **VARIANTS[v]))
        torch.manual_seed(0)
        out = tmp / f"{over['augment']}{over['intensity_jitter']}{variant}.safetensors"
        cfg = TrainConfig(arch="fast", epochs=epochs, steps_per_epoch=steps, batch_size=8,
                          patch=32, threads=1, out=str(out), command="measure", **over)
        st = Trainer(cfg, sources=[src]).run()
        enh = Enhancer.load(out, device="cpu")
        row = {"recipe": name, "state": st.state,
               "val_gain_db": round(st.metrics["gain_db"], 2),
               "robust_min_gain_db": round(st.metrics.get("robust_min_gain_db", float("nan")), 2)}
        for g in (0.9, 1.0, 1.1):
            m = evaluate_tissue(enh, "stroma", n=4, tile=96, seed=2024, rl_iterations=(2,),
                                gain=g)
            row[f"stroma_x{g:g}_gain_db"] = round(m["gain_db_clean"], 2)
        print(json.dumps(row), flush=True)
        if variant:
            train_mod.augmentations_for = real


if __name__ == "__main__":
    main()
