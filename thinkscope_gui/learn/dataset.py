"""Training data: tiles from pair sources, a split by tile position, and random patches.

At a scale that is a small fraction (2.5 = 5/2, 4) patch origins are LR offsets whose HR
image ``origin*scale`` falls on an HR pixel (even offsets at 2.5): the HR patch is a plain
crop. At any other scale (a calibrated 2.4954) every LR offset is used and the HR patch is
sampled at its exact sub-pixel position (cubic spline on a small crop): keeping only the
offsets that happen to land within 0.05 HR px of a pixel left ~1 % of the patch positions
and cost 0.7 dB of gain over bicubic (measured, see README).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .meta import Normalisation
from .models import is_exact, scale_fraction
from .normalise import denormalise, divisor_for, normalise, to_unit
from .sources import PairSource, split_key

__all__ = ["PatchDataset", "Tile", "aligned_origins", "check_compatible",
           "compute_normalisation", "denormalise", "load_tiles", "match_illumination",
           "normalise", "split_by_tile"]


@dataclass(frozen=True)
class Tile:
    """One registered pair kept in its native dtype (memory), with its split key."""

    lr: np.ndarray
    hr: np.ndarray
    divisor: float
    key: tuple
    source: str

    def lr01(self) -> np.ndarray:
        return to_unit(_hwc(self.lr), self.divisor)

    def hr01(self) -> np.ndarray:
        return to_unit(_hwc(self.hr), self.divisor)


def _hwc(a: np.ndarray) -> np.ndarray:
    return a[..., None] if a.ndim == 2 else a


def check_compatible(sources: Sequence[PairSource]) -> tuple[float, int]:
    """All sources must share scale and channel count; returns (scale, channels)."""
    if not sources:
        raise ValueError("no pair sources given")
    scale, channels = float(sources[0].scale), int(sources[0].channels)
    for s in sources[1:]:
        if abs(float(s.scale) - scale) > 1e-6 or int(s.channels) != channels:
            raise ValueError(f"{s.name}: scale {s.scale:g} / {s.channels} channels differ from "
                             f"{sources[0].name}: scale {scale:g} / {channels} channels")
    return scale, channels


def match_illumination(lr: np.ndarray, hr: np.ndarray, sigma_lr_px: float = 16.0) -> np.ndarray:
    """HR rescaled so its slowly varying brightness follows the LR frame, per channel.

    Why: the two objectives see the lamp through different vignetting, exposure and
    flat field, so registered pairs differ by a smooth gain. A network would learn that
    gain as part of "enhancement" and apply it to every future frame. Optical blur keeps
    local means, so heavily blurred LR and HR agree for a perfect pair: their ratio is the
    gain error alone (frequencies below ~0.05 cycles/µm, far below any detail of interest).
    """
    from scipy.ndimage import gaussian_filter

    lr_f = _hwc(lr).astype(np.float32)
    hr_f = _hwc(hr).astype(np.float32)
    h, w = lr_f.shape[:2]
    hr_t = torch.from_numpy(hr_f.transpose(2, 0, 1).copy())[None]
    hr_small = F.adaptive_avg_pool2d(hr_t, (h, w))[0].numpy().transpose(1, 2, 0)
    sig = (sigma_lr_px, sigma_lr_px, 0)
    ratio = (gaussian_filter(lr_f, sig, mode="reflect") + 1e-3) / (
        gaussian_filter(hr_small, sig, mode="reflect") + 1e-3)
    r_t = torch.from_numpy(ratio.transpose(2, 0, 1).copy())[None]
    r_up = F.interpolate(r_t, size=hr_f.shape[:2], mode="bilinear", align_corners=False)
    out = hr_f * r_up[0].numpy().transpose(1, 2, 0)
    if hr.dtype.kind in "ui":  # raw camera units in and out: no [0, 1] conversion here
        out = np.clip(np.rint(out), 0, np.iinfo(hr.dtype).max)
    return out.astype(hr.dtype).reshape(hr.shape)


def load_tiles(sources: Sequence[PairSource],
               on_progress: Callable[[int, int], None] | None = None,
               illumination: bool = False) -> list[Tile]:
    """Read every accepted pair into memory once (training revisits each many times);
    illumination=True removes smooth LR/HR gain differences (see match_illumination)."""
    jobs = [(s, i) for s in sources for i in s.pair_ids()]
    tiles: list[Tile] = []
    for n, (s, i) in enumerate(jobs):
        lr, hr = s.lr(i), s.hr(i)
        if illumination:
            hr = match_illumination(lr, hr)
        divisor = divisor_for(lr.dtype, int(s.bit_depth) if lr.dtype.kind in "ui" else None)
        key = (s.name, *split_key(s.meta(i), i))
        tiles.append(Tile(lr=lr, hr=hr, divisor=divisor, key=key, source=s.name))
        if on_progress:
            on_progress(n + 1, len(jobs))
    return tiles


def aligned_origins(n: int, patch: int, scale: float, tol_hr_px: float = 0.05) -> np.ndarray:
    """LR patch offsets along a tile side of ``n`` whose HR offset ``o*scale`` lies within
    ``tol_hr_px`` of an HR pixel (the closest one when none does), and whose HR patch
    stays inside the HR tile of ``round(n*scale)`` px.

    Why: an HR patch cut at round(o*scale) is misaligned by exactly that rounding error,
    so plain crops keep it tiny (0 at 5/2 on even offsets); with sub-pixel HR sampling
    (``tol_hr_px=0.5``) every offset whose HR patch fits is used.
    """
    o = np.arange(0, n - patch + 1)
    hr = np.round(o * scale)
    err = np.abs(o * scale - hr)
    fits = hr + round(patch * scale) <= round(n * scale)
    ok = o[(err <= tol_hr_px + 1e-9) & fits]
    if ok.size == 0:
        cand = np.where(fits, err, np.inf)
        ok = o[[int(np.argmin(cand))]]
    return ok


def split_by_tile(tiles: Sequence[Tile], val_fraction: float = 0.2,
                  seed: int = 0) -> tuple[list[Tile], list[Tile]]:
    """Deterministic split over tile keys (positions), so no patch of a validation tile
    is ever trained on. At least one key goes to each side when there are two or more."""
    keys = sorted({t.key for t in tiles},
                  key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    n_val = int(round(len(keys) * val_fraction))
    if len(keys) >= 2:
        n_val = min(max(n_val, 1), len(keys) - 1)
    else:
        n_val = 0
    val_keys = set(keys[:n_val])
    return ([t for t in tiles if t.key not in val_keys], [t for t in tiles if t.key in val_keys])


def compute_normalisation(tiles: Sequence[Tile], divisor: float) -> Normalisation:
    """Per-channel mean/std of the LR training tiles (recorded in the model file)."""
    stack = np.concatenate([t.lr01().reshape(-1, t.lr01().shape[-1])[::7] for t in tiles])
    mean = stack.mean(0).astype(float).tolist()
    std = np.maximum(stack.std(0), 1e-3).astype(float).tolist()
    return Normalisation(divisor=divisor, mean=mean, std=std)


class PatchDataset(Dataset):
    """Random aligned patches with flips and 90-degree rotations, in network space.

    intensity_jitter j: per-channel gain in [1-j, 1+j] and offset in [-j/2, j/2] applied to
    both images (physically valid, see __getitem__).
    Item idx of epoch e is drawn from a generator seeded by (seed, e, idx): reproducible,
    and independent of how a DataLoader batches it.
    """

    def __init__(self, tiles: Sequence[Tile], scale: float, norm: Normalisation,
                 patch: int = 48, length: int = 1024, augment: bool = True,
                 seed: int = 0, intensity_jitter: float = 0.0) -> None:
        if not tiles:
            raise ValueError("no training tiles")
        self.tiles = list(tiles)
        self.scale = float(scale)
        self.q = scale_fraction(self.scale)[1]
        self.patch = int(patch) - int(patch) % self.q  # even patches at 2.5: integral HR
        self.hr_patch = int(round(self.patch * self.scale))
        self._origins: dict[int, np.ndarray] = {}
        #: sub-pixel HR sampling at scales with no small fraction (see the module docstring)
        self.subpixel = not is_exact(self.scale)
        self.norm = norm
        self.length = int(length)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.intensity_jitter = float(intensity_jitter)
        small = [t for t in self.tiles if min(t.lr.shape[:2]) < self.patch]
        if small:
            raise ValueError(f"patch {self.patch} is larger than a tile {small[0].lr.shape}")

    def _aligned(self, n: int) -> np.ndarray:
        if n not in self._origins:
            tol = 0.5 if self.subpixel else 0.05
            self._origins[n] = aligned_origins(n, self.patch, self.scale, tol)
        return self._origins[n]

    def _hr_patch(self, hr: np.ndarray, oy: int, ox: int) -> np.ndarray:
        """HR patch whose pixel k sits at LR (k + 0.5)/scale - 0.5 from the LR origin."""
        m = self.hr_patch
        fy, fx = oy * self.scale, ox * self.scale
        hy, hx = int(round(fy)), int(round(fx))
        if not self.subpixel:
            return _hwc(hr[hy:hy + m, hx:hx + m])
        from scipy import ndimage

        pad = 6  # spline edge effects decay as 0.27**d: negligible inside
        rows = np.clip(np.arange(hy - pad, hy + m + pad), 0, hr.shape[0] - 1)
        cols = np.clip(np.arange(hx - pad, hx + m + pad), 0, hr.shape[1] - 1)
        crop = _hwc(hr[rows][:, cols]).astype(np.float32)
        dy, dx = fy - hy, fx - hx  # |d| <= 0.5 HR px
        out = ndimage.shift(crop, (-dy, -dx, 0), order=3, mode="nearest")
        return out[pad:pad + m, pad:pad + m]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, int(idx)))
        t = self.tiles[int(rng.integers(len(self.tiles)))]
        h, w = t.lr.shape[:2]
        p = self.patch
        oys, oxs = self._aligned(h), self._aligned(w)
        oy = int(oys[int(rng.integers(len(oys)))])
        ox = int(oxs[int(rng.integers(len(oxs)))])
        lr = to_unit(_hwc(t.lr[oy:oy + p, ox:ox + p]), t.divisor)
        hr = to_unit(self._hr_patch(t.hr, oy, ox), t.divisor)
        if self.augment:
            k = int(rng.integers(4))
            lr, hr = np.rot90(lr, k), np.rot90(hr, k)
            if rng.integers(2):
                lr, hr = lr[:, ::-1], hr[:, ::-1]
        if self.intensity_jitter:
            # Incoherent imaging is linear in intensity per colour channel, so any per-channel
            # affine map a*x+b of both images is again a valid pair: the net must learn the
            # optics, not the stain statistics of the training tissue.
            j = self.intensity_jitter
            a = np.asarray(rng.uniform(1 - j, 1 + j, lr.shape[-1]), np.float32)
            b = np.asarray(rng.uniform(-j / 2, j / 2, lr.shape[-1]), np.float32)
            lr = (lr - 0.5) * a + 0.5 + b
            hr = (hr - 0.5) * a + 0.5 + b
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))
        y = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1)))
        return normalise(x[None], self.norm)[0], normalise(y[None], self.norm)[0]
