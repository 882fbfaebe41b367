"""Measurement (not a test): trained-model quality at a calibrated scale vs the nominal one.

Same simulator recipe (16 pairs, seed 3, same tile names so the same split by tile), same
training; prints the fast model's validation PSNR and its gain over bicubic.
    PYTHONPATH=. python tests/measure_scale_quality.py 2.5 110
    PYTHONPATH=. python tests/measure_scale_quality.py 2.4954 109   # 109*2.4954 ~ 272.00
(The LR tile is chosen so that tile*scale is nearly integral: the simulator renders the HR
frame centred, and then its grid is the store's exact grid.)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

from thinkscope_gui.learn.sim_source import SimPairSource
from thinkscope_gui.learn.train import TrainConfig, Trainer


class ScaledSimSource(SimPairSource):
    """SimPairSource with the 100x pixel made to give exactly ``scale``."""

    def __init__(self, scale: float, *a: object, **k: object) -> None:
        super().__init__(*a, **k)  # type: ignore[arg-type]
        hp = self.lr_profile.pixel_size_um / scale
        opt = self._renderer.optics["100x"]
        self._renderer.optics["100x"] = dataclasses.replace(opt, pixel_size_um=hp)
        self.hr_profile = self.hr_profile.model_copy(update={"pixel_size_um": hp})
        self.scale = scale


def main() -> None:
    scale, tile = float(sys.argv[1]), int(sys.argv[2])
    torch.manual_seed(0)
    src = ScaledSimSource(scale, 16, tile=tile, seed=3)
    out = Path(tempfile.mkdtemp()) / "m.safetensors"
    cfg = TrainConfig(arch="fast", epochs=8, steps_per_epoch=100, batch_size=8, patch=32,
                      threads=1, val_fraction=0.25, out=str(out), command="measure")
    st = Trainer(cfg, sources=[src]).run()
    m = st.metrics
    print(json.dumps({"scale": scale, "tile": tile, "state": st.state,
                      "psnr": round(m["psnr"], 2), "bicubic_psnr": round(m["bicubic_psnr"], 2),
                      "gain_db": round(m["psnr"] - m["bicubic_psnr"], 2)}))


if __name__ == "__main__":
    main()
