"""Pair sources: where matched (LR, HR) training tiles come from.

Every source answers the same small read API as the HDF5 PairStore (ids, lr, hr, meta,
scale, profiles, fingerprint), so the dataset does not care whether pairs came from the
instrument, from a folder of images, or from the simulator.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hardware.profiles import ObjectiveProfile, load_profiles

from .imageio import read_input

IMAGE_EXTS = (".png", ".tif", ".tiff")


@runtime_checkable
class PairSource(Protocol):
    """The read API the dataset needs (PairStore satisfies it through StorePairSource)."""

    name: str
    scale: float
    channels: int
    bit_depth: int
    lr_profile: ObjectiveProfile
    hr_profile: ObjectiveProfile

    def pair_ids(self) -> list[int]: ...
    def lr(self, i: int) -> np.ndarray: ...
    def hr(self, i: int) -> np.ndarray: ...
    def meta(self, i: int) -> dict[str, Any]: ...
    def fingerprint(self) -> str: ...


def split_key(meta: dict[str, Any], i: int) -> tuple:
    """Key of the tile a pair came from: why: train/val split by position, never by patch."""
    if meta.get("tile_ix") is not None and meta.get("tile_iy") is not None:
        return ("tile", int(meta["tile_ix"]), int(meta["tile_iy"]))
    xy = meta.get("stage_xy_um")
    if xy is not None:
        return ("xy", round(float(xy[0])), round(float(xy[1])))
    return ("id", i)


class FolderPairSource:
    """root/lr/NAME + root/hr/NAME image pairs; optional root/pairs.json gives the profiles
    ({"lr_profile": {...}, "hr_profile": {...}, "bit_depth": 12, "tiles": {NAME: {..}}}).
    Without it the default 40x/100x profiles are assumed and checked against the shapes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.name = f"folder:{self.root}"
        lr_dir, hr_dir = self.root / "lr", self.root / "hr"
        if not lr_dir.is_dir() or not hr_dir.is_dir():
            raise FileNotFoundError(f"{self.root}: expected sub-folders lr/ and hr/")
        names = sorted(p.name for p in lr_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        self._names = [n for n in names if (hr_dir / n).is_file()]
        if not self._names:
            raise FileNotFoundError(f"{self.root}: no matching file names in lr/ and hr/")
        info: dict[str, Any] = {}
        if (self.root / "pairs.json").is_file():
            info = json.loads((self.root / "pairs.json").read_text())
        if "lr_profile" in info:
            self.lr_profile = ObjectiveProfile.model_validate(info["lr_profile"])
            self.hr_profile = ObjectiveProfile.model_validate(info["hr_profile"])
        else:
            profiles = load_profiles()
            self.lr_profile, self.hr_profile = profiles["40x"], profiles["100x"]
        self._tiles: dict[str, dict[str, Any]] = info.get("tiles", {})
        self.scale = self.lr_profile.pixel_size_um / self.hr_profile.pixel_size_um
        lr0, hr0 = self.lr(0), self.hr(0)
        if abs(hr0.shape[0] - round(lr0.shape[0] * self.scale)) > 1:
            raise ValueError(f"{self.root}: hr/{self._names[0]} is {hr0.shape[:2]} but lr is "
                             f"{lr0.shape[:2]}; expected scale {self.scale:g} from the profiles")
        self.channels = 1 if lr0.ndim == 2 else lr0.shape[-1]
        # pairs.json may say how many bits the camera really had (12 in a uint16, say)
        self.bit_depth = int(info.get("bit_depth") or (8 if lr0.dtype == np.uint8 else 16))

    def pair_ids(self) -> list[int]:
        return list(range(len(self._names)))

    def lr(self, i: int) -> np.ndarray:
        return read_input(self.root / "lr" / self._names[i])[0]

    def hr(self, i: int) -> np.ndarray:
        return read_input(self.root / "hr" / self._names[i])[0]

    def meta(self, i: int) -> dict[str, Any]:
        return {"name": self._names[i], **self._tiles.get(self._names[i], {})}

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for n in self._names:
            for sub in ("lr", "hr"):
                h.update((self.root / sub / n).read_bytes())
        return h.hexdigest()


class StorePairSource:
    """Adapter over the HDF5 PairStore (accepted pairs only)."""

    def __init__(self, path: str | Path) -> None:
        from thinkscope_gui.pairs.store import PairStore

        self.path = Path(path)
        self.name = f"store:{self.path}"
        self._store = PairStore(self.path)
        self.scale = float(self._store.scale)
        self.lr_profile = self._store.lr_profile
        self.hr_profile = self._store.hr_profile
        self.channels = int(self._store.channels)
        self.bit_depth = int(getattr(self._store, "bit_depth", 8))
        self._ids = list(self._store.pair_ids(accepted_only=True))

    def pair_ids(self) -> list[int]:
        return list(self._ids)

    def lr(self, i: int) -> np.ndarray:
        return np.asarray(self._store.lr(i))

    def hr(self, i: int) -> np.ndarray:
        return np.asarray(self._store.hr(i))

    def meta(self, i: int) -> dict[str, Any]:
        return dict(self._store.meta(i))

    def fingerprint(self) -> str:
        return str(self._store.fingerprint())

    def close(self) -> None:
        self._store.close()
