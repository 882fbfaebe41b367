"""Consistency check: re-image the enhanced frame through the LR optics and compare it
with the measured LR frame. Where they disagree the network may be inventing detail.

Re-imaging = blur with the LR objective's incoherent PSF (cutoff 2·NA/λ per channel) and
LR pixel box on the HR grid, then area-average onto the LR pixels. The extra blur of the
HR objective itself is small at LR frequencies and ignored.

:func:`consistency_sigma` gives the disagreement in units of the frame's own noise (σ,
estimated from the frame itself, signal-dependent), so camera noise and clean glass read
about 1 σ whatever the exposure and invented detail stands out on a fixed scale.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .baselines import psf_from_optics
from .metrics import to_tensor01
from .normalise import divisor_for


@lru_cache(maxsize=8)
def _kernels(na: float, hr_px: float, lr_px: float, channels: int) -> torch.Tensor:
    ks = [psf_from_optics(na, min(c, 2) if channels == 3 else 1, hr_px, lr_px, 21)
          for c in range(channels)]
    return torch.from_numpy(np.stack(ks)[:, None].astype(np.float32))


def _conv_same(x: torch.Tensor, k: torch.Tensor, pad: int) -> torch.Tensor:
    """Depthwise correlation of a (1,C,H,W) tensor with (C,1,K,K) kernels, the frame
    extended by replicating its border: (1,C,H,W) out. Why FFT: a 21² kernel on a 2560²
    HR frame is ~9 GFLOP directly but a few FFTs; the border absorbs the circular wrap,
    so the result equals conv2d of the replicate-padded frame."""
    from scipy.fft import next_fast_len

    c, h, w = x.shape[1:]
    if h * w < 96 * 96:
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), k, groups=c)
    # one replicate pad straight to a fast FFT size: a size with large prime factors (a
    # 230 px live crop gives 595 = 5·7·17) is several times slower, and what lies beyond
    # the first ``pad`` pixels of border never reaches an output inside the frame
    fh, fw = next_fast_len(h + 2 * pad, real=True), next_fast_len(w + 2 * pad, real=True)
    xp = F.pad(x, (pad, fw - w - pad, pad, fh - h - pad), mode="replicate")[0]
    y = torch.fft.irfft2(torch.fft.rfft2(xp) * _kernel_fft(k, fh, fw), s=(fh, fw))
    return y[None, :, pad:pad + h, pad:pad + w]


_KFFT: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _kernel_fft(k: torch.Tensor, hp: int, wp: int) -> torch.Tensor:
    """The kernels' spectrum on an (hp, wp) grid, centred at the origin; cached because a
    live view asks for the same few shapes frame after frame."""
    key = (id(k), hp, wp)
    hit = _KFFT.get(key)
    if hit is not None:
        return hit[1]
    c, ks = k.shape[0], k.shape[-1]
    kp = torch.zeros((c, hp, wp), dtype=k.dtype)
    kp[:, :ks, :ks] = k[:, 0].flip(-1, -2)
    kp = torch.roll(kp, shifts=(-(ks // 2), -(ks // 2)), dims=(-2, -1))
    got = torch.fft.rfft2(kp)
    if len(_KFFT) > 16:
        _KFFT.clear()
    _KFFT[key] = (k, got)  # holding k keeps its id from being reused
    return got


def reimage(enhanced: np.ndarray, lr_shape: tuple[int, int], na: float, lr_pixel_um: float,
            hr_pixel_um: float, divisor: float | None = None) -> np.ndarray:
    """The enhanced (HR) frame as the LR objective and camera would have seen it, [0,1].
    ``divisor``: the camera's full scale (learn.normalise); None: the dtype's."""
    x = to_tensor01(enhanced, divisor)
    c = x.shape[1]
    k = _kernels(float(na), float(hr_pixel_um), float(lr_pixel_um), c)
    x = _conv_same(x, k, k.shape[-1] // 2)
    y = F.adaptive_avg_pool2d(x, lr_shape)
    return y[0].permute(1, 2, 0).numpy()


def consistency_map(lr_frame: np.ndarray, enhanced: np.ndarray, na: float,
                    lr_pixel_um: float, hr_pixel_um: float, smooth_px: float = 2.0,
                    divisor: float | None = None, bit_depth: int | None = None
                    ) -> np.ndarray:
    """(H, W) float32 on the LR grid: local RMS difference between the measured frame and
    the re-imaged enhanced frame, in units of the camera's full range (0 = consistent).
    The full range is ``divisor``, else 2**bit_depth - 1 (``Frame.bit_depth``), else the
    dtype's: a 12-bit frame in uint16 must not read 16 times darker than it is.
    Note the PSF sinc has a pixel box at the LR pitch, so a perfect enhancement of a
    noise-free frame maps back onto it (up to the small HR-objective blur)."""
    from scipy.ndimage import gaussian_filter

    if divisor is None:
        divisor = divisor_for(np.asarray(lr_frame).dtype, bit_depth)
    lr01 = to_tensor01(lr_frame, divisor)[0].permute(1, 2, 0).numpy()
    back = reimage(enhanced, lr01.shape[:2], na, lr_pixel_um, hr_pixel_um, divisor)
    d2 = ((back - lr01) ** 2).mean(-1)
    return np.sqrt(gaussian_filter(d2, smooth_px)).astype(np.float32)


#: noise-σ units below which a region counts as consistent; the live map's fixed scale
SIGMA_FLOOR = 1.0
SIGMA_TOP = 6.0


def _highpass(x: np.ndarray) -> np.ndarray:
    """x minus the mean of its 4 neighbours: flat signal and gradients cancel, white noise
    of variance σ² leaves variance 1.25 σ²."""
    p = np.pad(x, [(1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 2), mode="reflect")
    return x - 0.25 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])


def _odd_step(n: int, sample: int) -> int:
    """The step of a regular sub-grid of about ``sample`` of ``n`` pixels: odd, because an
    even step sees one phase of a colour camera's 2x2 Bayer pattern only (whose
    interpolated pixels carry a fraction of the noise)."""
    step = max(1, int(np.ceil(np.sqrt(n / max(sample, 1)))))
    return step + 1 if step > 1 and step % 2 == 0 else step


def _by_brightness(mu: np.ndarray, values: np.ndarray,
                   spread: Callable[[np.ndarray], float], bins: int,
                   floor: float, sample: int) -> np.ndarray:
    """(H, W) noise variance: ``spread(values in one bin)`` in bins of the local brightness
    ``mu`` (so shot noise, rising with the signal, is followed), interpolated to every
    pixel by its brightness. The bins' statistics come from a regular sub-grid of about
    ``sample`` pixels (:func:`_odd_step`): thousands of values per bin pin a spread to a
    few per cent, and statistics over every pixel were most of a live job's estimate."""
    step = _odd_step(mu.size, sample)
    v, ms = values[::step, ::step], mu[::step, ::step]
    edges = np.quantile(ms, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, ms, side="right") - 1, 0, bins - 1)
    centres, variances = [], []
    for b in range(bins):
        sel = idx == b
        if sel.sum() < 16:
            continue
        centres.append(float(ms[sel].mean()))
        variances.append(float(spread(v[sel].ravel())))
    if not centres:
        return np.full(mu.shape, max(floor, 1e-12), np.float32)
    var = np.interp(mu, centres, variances)
    return np.maximum(var, max(floor, 1e-12)).astype(np.float32)


def _mad_variance(r: np.ndarray) -> float:
    """Noise variance from high-passed values (variance 1.25 σ², see _highpass), by their
    median absolute deviation: edges, a minority in each bin, do not inflate it."""
    mad = np.median(np.abs(r - np.median(r)))
    return float((1.4826 * mad) ** 2 / 1.25)


def _clipped_half_mean_square(d: np.ndarray) -> float:
    """Noise variance from differences of two exposures (variance 2 σ²): their mean square
    clipped at 3 σ, which drops what moved or changed between them."""
    ms = float(np.mean(d * d))
    for _ in range(3):
        keep = d * d < 9.0 * ms
        ms = float(np.mean(d[keep] ** 2)) / 0.9733 if keep.any() else ms
    return ms / 2.0


def noise_variance(lr01: np.ndarray, bins: int = 8, floor: float = 0.0,
                   sample: int = 16_000) -> np.ndarray:
    """(H, W) per-pixel noise variance of a [0, 1] frame (per channel), estimated from the
    frame itself: a robust (median-absolute-deviation) spread of the high-passed frame in
    bins of local brightness (:func:`_by_brightness`). ``floor``: a lower bound (e.g. the
    quantisation step²/12)."""
    from scipy.ndimage import gaussian_filter

    x = lr01 if lr01.ndim == 3 else lr01[..., None]
    mu = gaussian_filter(x.mean(-1), 1.5)
    # high-passed at full resolution: a pixel's deviation from its own neighbours
    return _by_brightness(mu, _highpass(x), _mad_variance, bins, floor, sample)


def noise_variance_from_pair(a01: np.ndarray, b01: np.ndarray, bins: int = 8,
                             floor: float = 0.0, sample: int = 16_000) -> np.ndarray:
    """(H, W) per-pixel noise variance of a [0, 1] frame from two frames of the same still
    field (the live camera's newest and the one before): half the variance of their
    difference, in bins of brightness. Why besides :func:`noise_variance`: a colour
    camera's demosaicing spreads each pixel's noise over its neighbours, so a spatial
    high-pass reads it several times too low (a bilinear-demosaiced flat field: 7x);
    two exposures differ by the noise alone, however it is correlated in space. A
    clipped mean square rather than a median: interpolated pixels carry a fraction of the
    noise, and the map compares every pixel."""
    from scipy.ndimage import gaussian_filter

    a = a01 if a01.ndim == 3 else a01[..., None]
    b = b01 if b01.ndim == 3 else b01[..., None]
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {a.shape} vs {b.shape}")
    mu = gaussian_filter(0.5 * (a + b).mean(-1), 1.5)
    return _by_brightness(mu, (a - b).astype(np.float32), _clipped_half_mean_square, bins,
                          floor, sample)


def consistency_sigma(lr_frame: np.ndarray, enhanced: np.ndarray, na: float,
                      lr_pixel_um: float, hr_pixel_um: float, smooth_px: float = 2.0,
                      divisor: float | None = None, bit_depth: int | None = None,
                      noise_var: np.ndarray | float | None = None,
                      prev_frame: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32 on the LR grid: local RMS of (measured - re-imaged enhanced) in units
    of the frame's own noise σ. Camera noise alone reads about 1; a faithful enhancement
    stays below 2 almost everywhere; invented or lost detail reads many σ.
    ``noise_var``: per-pixel noise variance in [0, 1]² units (from the camera's gain and
    read noise); else from ``prev_frame``, the camera's frame before ``lr_frame`` of the
    same still field (:func:`noise_variance_from_pair`); else estimated from the frame
    itself (:func:`noise_variance`)."""
    from scipy.ndimage import gaussian_filter

    if divisor is None:
        divisor = divisor_for(np.asarray(lr_frame).dtype, bit_depth)
    lr01 = to_tensor01(lr_frame, divisor)[0].permute(1, 2, 0).numpy()
    back = reimage(enhanced, lr01.shape[:2], na, lr_pixel_um, hr_pixel_um, divisor)
    if noise_var is None:
        q = 1.0 / divisor if np.asarray(lr_frame).dtype.kind in "ui" else 0.0
        if prev_frame is not None:
            prev01 = to_tensor01(prev_frame, divisor)[0].permute(1, 2, 0).numpy()
            noise_var = noise_variance_from_pair(lr01, prev01, floor=q * q / 12.0)
        else:
            noise_var = noise_variance(lr01, floor=q * q / 12.0)
    d2 = ((back - lr01) ** 2).mean(-1) / noise_var
    return np.sqrt(gaussian_filter(d2, smooth_px)).astype(np.float32)
