"""Consistency check: re-image the enhanced frame through the LR optics and compare it
with the measured LR frame. Where they disagree the network may be inventing detail.

Re-imaging = blur with the LR objective's incoherent PSF (cutoff 2·NA/λ per channel) and
LR pixel box on the HR grid, then area-average onto the LR pixels. The extra blur of the
HR objective itself is small at LR frequencies and ignored.
"""

from __future__ import annotations

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


def reimage(enhanced: np.ndarray, lr_shape: tuple[int, int], na: float, lr_pixel_um: float,
            hr_pixel_um: float, divisor: float | None = None) -> np.ndarray:
    """The enhanced (HR) frame as the LR objective and camera would have seen it, [0,1].
    ``divisor``: the camera's full scale (learn.normalise); None: the dtype's."""
    x = to_tensor01(enhanced, divisor)
    c = x.shape[1]
    k = _kernels(float(na), float(hr_pixel_um), float(lr_pixel_um), c)
    pad = k.shape[-1] // 2
    x = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), k, groups=c)
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
