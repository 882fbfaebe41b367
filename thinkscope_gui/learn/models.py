"""Enhancement networks: a fast one for live video and a quality one for stills.

Both work at the LR sampling and finish with a learned sub-pixel upsampling plus a
global bicubic skip, so they learn only the residual detail the 40x optics lost.

Non-integer scale (2.5 for 40x -> 100x) is handled by writing the scale as a small
fraction p/q (5/2): PixelShuffle by p, then a q x q average pool (an exact, antialiased
box resample that keeps the HR pixel grid aligned with the LR one). Output is then
exactly round(H*scale) x round(W*scale); for sizes where H*p is not a multiple of q the
pooled map is resampled by a fixed bilinear interpolate to the exact size.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("fast", "quality")


def scale_fraction(scale: float, max_den: int = 4) -> tuple[int, int]:
    """(p, q) with p/q == scale (to 1e-6): why: exact sub-pixel shuffle then box pooling."""
    frac = Fraction(scale).limit_denominator(max_den)
    if abs(float(frac) - scale) > 1e-6 or frac <= 0:
        # awkward scale: shuffle by ceil(scale), interpolate the remainder
        p = int(-(-scale // 1))
        return max(p, 1), 1
    return frac.numerator, frac.denominator


def out_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """Exact output size contract: round(H*scale) x round(W*scale)."""
    return int(round(h * scale)), int(round(w * scale))


def bicubic(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The baseline and the global skip: bicubic upsampling by exactly `scale`, output
    round(H*scale) x round(W*scale).

    Why not F.interpolate(size=...): for odd sizes round(H*s)/H != s, which would shift
    the grid by a fraction of a pixel. The scale is passed explicitly and the input padded
    at the bottom/right, so every output pixel sits at the same place for any size (and
    tiles agree with whole frames)."""
    h, w = x.shape[-2:]
    oh, ow = out_size(h, w, scale)
    xp = F.pad(x, (0, 2, 0, 2), mode="replicate")
    y = F.interpolate(xp, scale_factor=scale, mode="bicubic", align_corners=False,
                      recompute_scale_factor=False)
    return y[..., :oh, :ow]


class SubPixelUp(nn.Module):
    """Features at LR -> image at exactly H*p/q: a stride-q conv (kernel 2q, centred on each
    q x q block) predicts the C*p*p sub-pixels of that block, then PixelShuffle(p).

    Why: 2.5x = 5/2, so every 2x2 LR block maps onto exactly 5x5 HR pixels; no resampling
    of the learned output and the HR grid stays aligned with the LR grid (edge to edge).
    """

    def __init__(self, feats: int, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.p, self.q = scale_fraction(self.scale)
        self.exact = abs(self.p / self.q - self.scale) < 1e-6
        k = 3 if self.q == 1 else 2 * self.q
        self.conv = nn.Conv2d(feats, channels * self.p * self.p, k, stride=self.q,
                              padding=1 if self.q == 1 else 0)
        self.shuffle = nn.PixelShuffle(self.p)

    def forward(self, f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        q = self.q
        if q > 1:
            h, w = f.shape[-2:]
            ph, pw = (-h) % q, (-w) % q  # pad bottom/right to a multiple of q, crop later
            f = F.pad(f, (q // 2, q - q // 2 + pw, q // 2, q - q // 2 + ph), mode="replicate")
        y = self.shuffle(self.conv(f))
        if self.exact and y.shape[-2] >= size[0] and y.shape[-1] >= size[1]:
            return y[..., : size[0], : size[1]]
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)


class FastSR(nn.Module):
    """ESPCN/FSRCNN-style live model: a few narrow convs at LR, sub-pixel output, bicubic skip."""

    def __init__(self, channels: int, scale: float, feats: int = 16,
                 layers: int = 1) -> None:
        super().__init__()
        self.scale = float(scale)
        self.channels = channels
        body: list[nn.Module] = [nn.Conv2d(channels, feats, 5, padding=2), nn.PReLU(feats)]
        for _ in range(layers):
            body += [nn.Conv2d(feats, feats, 3, padding=1), nn.PReLU(feats)]
        self.body = nn.Sequential(*body)
        self.up = SubPixelUp(feats, channels, self.scale)
        nn.init.zeros_(self.up.conv.weight)  # start exactly at bicubic
        nn.init.zeros_(self.up.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = out_size(x.shape[-2], x.shape[-1], self.scale)
        return bicubic(x, self.scale) + self.up(self.body(x), size)


class _ResBlock(nn.Module):
    def __init__(self, n: int, res_scale: float = 0.2) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(n, n, 3, padding=1)
        self.c2 = nn.Conv2d(n, n, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.c2(F.relu(self.c1(x), inplace=True))


class QualitySR(nn.Module):
    """EDSR-lite for stills: residual blocks at LR, sub-pixel output, bicubic skip."""

    def __init__(self, channels: int, scale: float, feats: int = 32,
                 blocks: int = 6) -> None:
        super().__init__()
        self.scale = float(scale)
        self.channels = channels
        self.head = nn.Conv2d(channels, feats, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(feats) for _ in range(blocks)])
        self.tail = nn.Conv2d(feats, feats, 3, padding=1)
        self.up = SubPixelUp(feats, channels, self.scale)
        nn.init.zeros_(self.up.conv.weight)
        nn.init.zeros_(self.up.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = out_size(x.shape[-2], x.shape[-1], self.scale)
        h = self.head(x)
        f = h + self.tail(self.blocks(h))
        return bicubic(x, self.scale) + self.up(f, size)


DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "fast": {"feats": 16, "layers": 1},
    "quality": {"feats": 32, "blocks": 6},
}


def build_model(arch: str, channels: int, scale: float,
                params: dict[str, Any] | None = None) -> nn.Module:
    """Build from (arch, params) as recorded in a model file, so files rebuild exactly."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")
    kw = dict(DEFAULT_PARAMS[arch])
    kw.update(params or {})
    cls = FastSR if arch == "fast" else QualitySR
    model = cls(channels=channels, scale=scale, **kw)
    model.arch_params = kw  # recorded in model files so they rebuild exactly
    return model


def receptive_radius(arch: str, params: dict[str, Any] | None = None) -> int:
    """LR pixels of context each output needs: why: tile overlap for seamless tiling."""
    kw = dict(DEFAULT_PARAMS.get(arch, {}))
    kw.update(params or {})
    if arch == "fast":
        return 2 + int(kw["layers"]) + 1 + 2  # 5x5, 3x3s, up conv, bicubic support
    return 1 + 2 * int(kw["blocks"]) + 1 + 1 + 2
