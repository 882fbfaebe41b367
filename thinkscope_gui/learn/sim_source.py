"""Simulator pair source: perfectly registered (40x, 100x) tiles rendered on demand.

The renderer gets ideal copies of the objectives (no parcentric, parfocal or rotation
error), so a pair is exactly the same specimen area seen through the two optics, each in
best focus. That is the ground truth the acquisition pipeline approximates by registration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np

from hardware.profiles import ObjectiveProfile, load_profiles

DEFAULT_TISSUES = ("epithelium", "lymphoid")


def _has_realistic() -> bool:
    try:
        import hardware.sim.realistic  # noqa: F401
    except ImportError:
        return False
    return True


#: simulated stands the default models train on ("realistic" once hardware/sim/realistic.py
#: exists)
STANDS: tuple[str, ...] = ("ideal", "realistic") if _has_realistic() else ("ideal",)
#: simulated stands no default model trains on: the transfer check's new stand
#: (hardware.sim.realistic.ACHROMAT_OPTICS)
HELD_OUT_STANDS: tuple[str, ...] = ("achromat",) if _has_realistic() else ()
#: every simulated stand pairs can be drawn from
ALL_STANDS: tuple[str, ...] = STANDS + HELD_OUT_STANDS


def ideal_renderer(lr: str = "40x", hr: str = "100x", texture_seed: int = 0) -> Any:
    """A SimRenderer whose objectives have no mechanical imperfections (``texture_seed``:
    the realisation of the slide's fine textures, 0 = the default slide)."""
    from hardware.sim.optics import DEFAULT_SIM_OPTICS
    from hardware.sim.render import SimRenderer

    optics = {k: dataclasses.replace(v, true_offset_xy_um=(0.0, 0.0), true_parfocal_z_um=0.0,
                                     true_rotation_deg=0.0)
              for k, v in DEFAULT_SIM_OPTICS.items() if k in (lr, hr)}
    return SimRenderer(optics, texture_seed=texture_seed)


def stand_renderer(stand: str = "ideal", lr: str = "40x", hr: str = "100x",
                   texture_seed: int = 0) -> Any:
    """Renderer of registered pairs on a simulated stand. "realistic": partially coherent
    optics with condenser, Bayer 12-bit camera with bias and fixed-pattern noise, with the
    mechanical truths (offsets, rotation, off-nominal pixels) removed so LR and HR see
    exactly the same field at the nominal scale (what registration would deliver).
    "achromat": the same camera behind lower-NA objectives and a closed condenser, a stand
    no default model trains on."""
    if stand == "ideal":
        return ideal_renderer(lr, hr, texture_seed)
    if stand not in ALL_STANDS:
        if stand in ("realistic", "achromat"):
            raise ValueError(f"the {stand} simulated stand (hardware/sim/realistic.py) is not "
                             "in this build")
        raise ValueError(f"unknown stand {stand!r}; choose one of {', '.join(ALL_STANDS)}")
    from hardware.sim import realistic as rs
    from hardware.sim.optics import DEFAULT_SIM_OPTICS

    truth = rs.ACHROMAT_OPTICS if stand == "achromat" else rs.REALISTIC_OPTICS
    optics = {k: dataclasses.replace(v, true_offset_xy_um=(0.0, 0.0), true_parfocal_z_um=0.0,
                                     true_rotation_deg=0.0,
                                     pixel_size_um=DEFAULT_SIM_OPTICS[k].pixel_size_um)
              for k, v in truth.items() if k in (lr, hr)}
    return rs.RealisticRenderer(optics, texture_seed=texture_seed)


def render_pair(renderer: Any, x_um: float, y_um: float, lr_shape: tuple[int, int],
                scale: float, lr: str = "40x", hr: str = "100x", bit_depth: int = 8,
                noise: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) frames of the same field, both focused on the specimen surface."""
    from hardware.sim.slide import slide_surface_z

    z = slide_surface_z(x_um, y_um)
    hr_shape = (int(round(lr_shape[0] * scale)), int(round(lr_shape[1] * scale)))
    rng = np.random.default_rng(seed)
    a = renderer.render(x_um, y_um, z, lr, shape=lr_shape, bit_depth=bit_depth, noise=noise,
                        rng=rng)
    b = renderer.render(x_um, y_um, z, hr, shape=hr_shape, bit_depth=bit_depth, noise=noise,
                        rng=rng)
    return a, b


def tissue_regions() -> list[str]:
    """The simulated slide's tissue regions (the bar and line targets are not tissue)."""
    from hardware.sim.slide import REGIONS, TARGET_REGIONS

    return [r for r in REGIONS if r not in TARGET_REGIONS]


def region_positions(tissues: tuple[str, ...] | list[str], n: int, seed: int,
                     margin_um: float = 500.0) -> list[tuple[float, float, str]]:
    """n deterministic field centres spread over the named tissue regions (round robin)."""
    from hardware.sim.slide import REGIONS

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        name = tissues[i % len(tissues)]
        x0, x1, y0, y1 = REGIONS[name]
        y0, y1 = max(y0, -4500.0), min(y1, 4500.0)  # stay clear of the ragged edge
        out.append((float(rng.uniform(x0 + margin_um, x1 - margin_um)),
                    float(rng.uniform(y0 + margin_um, y1 - margin_um)), name))
    return out


class SimPairSource:
    """n simulator pairs of LR tile x tile pixels from the given tissue regions."""

    def __init__(self, n: int, tissues: list[str] | tuple[str, ...] = DEFAULT_TISSUES,
                 tile: int = 128, seed: int = 0, bit_depth: int = 8, noise: bool = True,
                 lr: str = "40x", hr: str = "100x", stand: str = "ideal",
                 texture_seed: int = 0) -> None:
        profiles = load_profiles()
        self.lr_profile: ObjectiveProfile = profiles[lr]
        self.hr_profile: ObjectiveProfile = profiles[hr]
        self.scale = self.lr_profile.pixel_size_um / self.hr_profile.pixel_size_um
        # the realistic stands' camera is 12 bits in uint16, whatever is asked
        self.stand = stand
        self.channels = 3
        self.bit_depth = int(bit_depth) if stand == "ideal" else 12
        self.tile, self.seed, self.noise = int(tile), int(seed), bool(noise)
        self.tissues = list(tissues)
        self.positions = region_positions(self.tissues, int(n), self.seed)
        prefix = "sim" if stand == "ideal" else f"sim-{stand}"
        self.texture_seed = int(texture_seed)
        self.name = f"{prefix}:{','.join(self.tissues)}:{n}x{tile}:seed{seed}"
        if self.texture_seed:
            self.name += f":texture{self.texture_seed}"
        self._renderer = stand_renderer(stand, lr, hr, self.texture_seed)
        self._labels = (lr, hr)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def pair_ids(self) -> list[int]:
        return list(range(len(self.positions)))

    def _pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._cache:
            x, y, _ = self.positions[i]
            self._cache[i] = render_pair(self._renderer, x, y, (self.tile, self.tile),
                                         self.scale, *self._labels, bit_depth=self.bit_depth,
                                         noise=self.noise, seed=self.seed * 100003 + i)
        return self._cache[i]

    def lr(self, i: int) -> np.ndarray:
        return self._pair(i)[0]

    def hr(self, i: int) -> np.ndarray:
        return self._pair(i)[1]

    def meta(self, i: int) -> dict[str, Any]:
        x, y, name = self.positions[i]
        return {"tile_ix": i, "tile_iy": 0, "stage_xy_um": (x, y), "tissue": name}

    def fingerprint(self) -> str:
        """Rendering is deterministic: the recipe identifies the data."""
        recipe = {"positions": self.positions, "tile": self.tile, "bit_depth": self.bit_depth,
                  "noise": self.noise, "seed": self.seed, "objectives": self._labels}
        if self.stand != "ideal":
            recipe["stand"] = self.stand
        if self.texture_seed:
            recipe["texture_seed"] = self.texture_seed
        return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()
