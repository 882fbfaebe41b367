"""The robustness set: validation that a model trained on one slide cannot fool.

Plain validation tiles share the slide, stain and exposure of the training tiles, so a
model that learned those statistics scores well on them and still falls below bicubic on
the next slide (issue 11). Every epoch therefore also scores the validation tiles under
fixed perturbations (learn.augment.ROBUST_PERTURBATIONS: brightness ±10 %, stain shift,
JPEG, extra noise) and, where available, tiles of a tissue kept out of training. The run
warns when the model falls below bicubic on any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .augment import ROBUST_PERTURBATIONS, perturb_pair
from .dataset import Tile

__all__ = ["BELOW_BICUBIC_KEY", "heldout_tiles", "robust_tiles", "robustness_metrics",
           "robustness_warning"]

#: metric flag set to 1.0 when the model is below bicubic on the robustness set (GUI shows it)
BELOW_BICUBIC_KEY = "robust_below_bicubic"
#: losses smaller than this (dB) are measurement noise, not a broken model
BELOW_TOLERANCE_DB = 0.05


def robust_tiles(val_tiles: Sequence[Tile], seed: int = 0) -> dict[str, list[Tile]]:
    """The validation tiles under each fixed perturbation, as float [0, 1] tiles."""
    out: dict[str, list[Tile]] = {}
    for kind in ROBUST_PERTURBATIONS:
        tiles = []
        for i, t in enumerate(val_tiles):
            lr, hr = perturb_pair(t.lr01(), t.hr01(), kind, seed=seed * 1000 + i)
            tiles.append(Tile(lr=np.clip(lr, 0, 1).astype(np.float32),
                              hr=np.clip(hr, 0, 1).astype(np.float32), divisor=1.0,
                              key=(*t.key, kind), source=t.source))
        out[kind] = tiles
    return out


def heldout_tiles(config: Any, sources: Sequence[Any] = (), n: int = 4
                  ) -> dict[str, list[Tile]]:
    """Simulator tiles of a tissue the run does not train on, when the data is 40x -> 100x
    RGB like the simulator's (for a lab's own stand too: another tissue through the same
    optics is still a fair check that the model learned optics, not one slide); {} when
    the data cannot be compared (another pair of objectives or channels).

    Keys: "heldout" (that tissue on the ideal stand) and, when this build has the
    realistic stand and the run trains on no realistic-stand data, "otherstand" (the same
    tissue there: partially coherent optics, Bayer camera, 12 bits with bias)."""
    from .dataset import load_tiles
    from .sim_source import SimPairSource, tissue_regions

    if sources:
        s0 = sources[0]
        same = (getattr(s0.lr_profile, "label", "") == "40x"
                and getattr(s0.hr_profile, "label", "") == "100x"
                and int(s0.channels) == 3)
        if not same:
            return {}
    seen = set(config.sim_tissues) if getattr(config, "sim_pairs", 0) else set()
    for s in sources:
        seen.update(getattr(s, "tissues", ()))
    others = [r for r in tissue_regions() if r not in seen]
    if not others:
        return {}
    from .sim_source import STANDS

    tissue = "stroma" if "stroma" in others else others[0]
    tile = min(int(getattr(config, "sim_tile", 96)), 96)
    src = SimPairSource(n, tissues=[tissue], tile=tile, seed=int(config.seed) + 7919)
    if sources and abs(float(src.scale) - float(sources[0].scale)) > 1e-6:
        return {}
    out = {"heldout": load_tiles([src])}
    if "realistic" in STANDS and not any(getattr(s, "stand", "ideal") == "realistic"
                                         for s in sources):
        out["otherstand"] = load_tiles([SimPairSource(
            n, tissues=[tissue], tile=tile, seed=int(config.seed) + 7919, stand="realistic")])
    return out


def robustness_metrics(score: Callable[[Sequence[Tile]], dict[str, float]],
                       sets: dict[str, list[Tile]],
                       heldout: dict[str, list[Tile]] | None = None) -> dict[str, float]:
    """Gain over bicubic per perturbation and on the held-out tissue, their worst case, and
    the below-bicubic flag. ``score(tiles)`` is the run's own validate() on those tiles."""
    out: dict[str, float] = {}
    gains, psnrs, bics = [], [], []
    for kind, tiles in sets.items():
        if not tiles:
            continue
        m = score(tiles)
        out[f"robust_gain_db_{kind}"] = m["gain_db"]
        gains.append(m["gain_db"])
        psnrs.append(m["psnr"])
        bics.append(m["bicubic_psnr"])
    for name, tiles in (heldout or {}).items():
        if not tiles:
            continue
        m = score(tiles)
        out[f"{name}_psnr"] = m["psnr"]
        out[f"{name}_bicubic_psnr"] = m["bicubic_psnr"]
        out[f"{name}_gain_db"] = m["gain_db"]
        gains.append(m["gain_db"])
    if not gains:
        return out
    if psnrs:
        out["robust_psnr"] = float(np.mean(psnrs))
        out["robust_bicubic_psnr"] = float(np.mean(bics))
        out["robust_gain_db"] = out["robust_psnr"] - out["robust_bicubic_psnr"]
    out["robust_min_gain_db"] = float(min(gains))
    out[BELOW_BICUBIC_KEY] = float(min(gains) < -BELOW_TOLERANCE_DB)
    return out


def robustness_warning(metrics: dict[str, float]) -> str | None:
    """The loud message for a model below bicubic on the robustness set, else None."""
    if not metrics.get(BELOW_BICUBIC_KEY):
        return None
    bad = [f"{k.removeprefix('robust_gain_db_').removesuffix('_gain_db')} "
           f"{v:+.2f} dB" for k, v in metrics.items()
           if (k.startswith("robust_gain_db_") or k in ("heldout_gain_db",
                                                         "otherstand_gain_db"))
           and v < -BELOW_TOLERANCE_DB]
    return ("WARNING: the model is WORSE THAN BICUBIC on the robustness set (" +
            ", ".join(bad) + "): it will make images from another slide, stain or exposure "
            "worse. Train with augmentation (the default; check --augment and --jitter) "
            "and more varied data.")
