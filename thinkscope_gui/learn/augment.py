"""Augmentations for what varies between stands and slides, and the fixed perturbations of
the robustness set that every epoch is scored on.

Why: a model trained on one slide, one stain and one exposure learns those statistics as
part of "enhancement": a 5 % brightness change then makes it worse than bicubic (issue 11).
Two kinds of change are applied to a training patch (all in [0, 1], HWC float32):

- changes of the *specimen or illumination* (exposure, stain/colour): applied to LR and HR
  alike, because both objectives would see them;
- changes of the *40x camera path* (noise, JPEG, Bayer mosaic + demosaic, slight defocus):
  applied to the LR input only; the HR target stays what the 100x delivers.

The 8 dihedral orientations are applied to both (the optics are isotropic).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Augmentations", "ROBUST_PERTURBATIONS", "augmentations_for", "bayer_round_trip",
           "dihedral",
           "hed_jitter", "jpeg_round_trip", "perturb_pair"]

# Ruifrok & Johnston stain vectors (OD per RGB channel) of haematoxylin, eosin and DAB.
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29],
                          [0.07, 0.99, 0.11],
                          [0.27, 0.57, 0.78]], np.float32)
_RGB_FROM_HED /= np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED).astype(np.float32)
_OD_FLOOR = 1e-3


@dataclass(frozen=True)
class Augmentations:
    """Strengths of the training augmentations (the defaults are the measured recipe;
    `Augmentations.off()` keeps only what was there before: flips and rotations).

    Tuned with tests/measure_robust_recipe.py (fast model, one tissue, 6x60 steps, gain
    over bicubic on unseen stroma at exposure x1.0): LR-only degradations at p=0.25 with
    defocus up to 0.6 px took it to -0.74 dB (the net learns to over-sharpen clean input);
    at these milder strengths +0.61 dB, against +0.82 for HED + exposure alone and -0.53
    for no augmentation (the old CLI default, -1.18 dB at x1.1)."""

    intensity: float = 0.5     #: per-channel affine gain/offset jitter, both images
    stain: float = 0.05        #: HED-space: per-stain OD scale 1±s and shift ±s, both images
    noise: float = 0.01        #: max extra Gaussian noise sigma on LR (shot-like)
    noise_p: float = 1.0       #: probability that a patch gets that extra noise
    jpeg: float = 0.1          #: probability of a JPEG round trip of LR (quality 50-95)
    bayer: float = 0.1         #: probability of an RGGB mosaic + bilinear demosaic of LR
    defocus: float = 0.1       #: probability of a slight Gaussian defocus of LR
    defocus_sigma: float = 0.4  #: max defocus sigma in LR px
    dihedral: bool = True      #: the 8 dihedral orientations

    @classmethod
    def mild(cls, intensity: float = 0.5) -> Augmentations:
        """The rebuild recipe of the shipped models: the specimen/illumination changes and
        the orientations of every patch, but the LR-only camera degradations on a few
        patches each, at the strength of the stands' own noise. Why: the training data
        already hold both stands' real cameras (the realistic one is a Bayer 12-bit camera
        with bias and fixed-pattern noise), and a net that sees degraded input on most
        patches learns to denoise and smooth: last session's both-stand fine-tunes with the
        robust recipe lost about 1 dB on the ideal stand and flattened the near-cutoff bars
        (0.49 -> 0.04-0.07 contrast for the quality model)."""
        return cls(intensity=intensity, noise=0.005, noise_p=0.25, jpeg=0.05, bayer=0.05,
                   defocus=0.0)

    @classmethod
    def noisy(cls, intensity: float = 0.5) -> Augmentations:
        """Exposure jitter and orientations, plus shot-like LR noise up to sigma 0.02 on half
        the patches and nothing else of the camera path. Why: a net trained on clean input
        only learns one fixed boost of the band near the 40x cutoff, which sharpens the
        bar target and the noise alike; with half the patches noisy it must tell the two
        apart (boost on clean input, hold back on noisy), while the blurring degradations
        (defocus, Bayer, JPEG) that flatten the bars stay out."""
        return cls(intensity=intensity, stain=0.0, noise=0.02, noise_p=0.5, jpeg=0.0,
                   bayer=0.0, defocus=0.0)

    @classmethod
    def off(cls, intensity: float = 0.0) -> Augmentations:
        return cls(intensity=intensity, stain=0.0, noise=0.0, jpeg=0.0, bayer=0.0,
                   defocus=0.0)

    def as_dict(self) -> dict[str, float | bool]:
        return dict(asdict(self))

    def apply(self, lr: np.ndarray, hr: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One random draw of every augmentation; float32 HWC in [0, 1]-ish out."""
        if self.dihedral:
            k = int(rng.integers(8))
            lr, hr = dihedral(lr, k), dihedral(hr, k)
        c = lr.shape[-1]
        if self.intensity:
            # Incoherent imaging is linear in intensity per colour channel, so any
            # per-channel affine map a*x+b of both images is again a valid pair.
            j = self.intensity
            a = np.asarray(rng.uniform(1 - j, 1 + j, c), np.float32)
            b = np.asarray(rng.uniform(-j / 2, j / 2, c), np.float32)
            lr = (lr - 0.5) * a + 0.5 + b
            hr = (hr - 0.5) * a + 0.5 + b
        if self.stain and c == 3:
            s = self.stain
            scale = rng.uniform(1 - s, 1 + s, 3).astype(np.float32)
            shift = rng.uniform(-s, s, 3).astype(np.float32)
            lr, hr = hed_jitter(lr, scale, shift), hed_jitter(hr, scale, shift)
        if self.defocus and rng.random() < self.defocus:
            from scipy.ndimage import gaussian_filter

            sig = float(rng.uniform(0.2, self.defocus_sigma))
            lr = gaussian_filter(lr, (sig, sig, 0), mode="reflect")
        if self.bayer and c == 3 and rng.random() < self.bayer:
            lr = bayer_round_trip(lr)
        if self.noise and (self.noise_p >= 1 or rng.random() < self.noise_p):
            sig = float(rng.uniform(0, self.noise))
            amp = np.sqrt(np.clip(lr, 1e-4, None))  # shot-like: grows with brightness
            lr = lr + rng.standard_normal(lr.shape).astype(np.float32) * sig * amp
        if self.jpeg and rng.random() < self.jpeg:
            lr = jpeg_round_trip(lr, int(rng.integers(50, 96)))
        return np.ascontiguousarray(lr, np.float32), np.ascontiguousarray(hr, np.float32)


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) of the 8 symmetries of the square: rot90 by k%4, then a flip if k>=4."""
    a = np.rot90(a, k % 4)
    return a[:, ::-1] if k >= 4 else a


def hed_jitter(img: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Scale and shift the haematoxylin/eosin/DAB optical densities (Beer-Lambert)."""
    od = -np.log(np.clip(img, _OD_FLOOR, 1.0))
    hed = od @ _HED_FROM_RGB
    hed = hed * scale + shift * np.maximum(hed, 0).mean(axis=(0, 1), keepdims=True)
    od2 = np.maximum(hed @ _RGB_FROM_HED, 0)
    out = np.exp(-od2).astype(np.float32)
    # keep what was above 1 (a bright offset of the intensity jitter) above 1
    return np.where(img > 1.0, img, out).astype(np.float32)


def jpeg_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode/decode as 8-bit JPEG (4:2:0 chroma, as cameras and web images do)."""
    from PIL import Image

    u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    squeeze = u8.shape[-1] == 1
    buf = io.BytesIO()
    Image.fromarray(u8[..., 0] if squeeze else u8).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32) / 255.0
    return out[..., None] if squeeze else out


def bayer_round_trip(img: np.ndarray) -> np.ndarray:
    """RGGB mosaic, then bilinear demosaicing: the colour camera's interpolation artefacts."""
    from scipy.ndimage import convolve

    h, w, _ = img.shape
    mask = np.zeros((h, w, 3), np.float32)
    mask[0::2, 0::2, 0] = 1
    mask[0::2, 1::2, 1] = 1
    mask[1::2, 0::2, 1] = 1
    mask[1::2, 1::2, 2] = 1
    mosaic = img * mask
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]], np.float32)
    k_g = np.array([[0, 0.25, 0], [0.25, 1, 0.25], [0, 0.25, 0]], np.float32)
    out = np.empty_like(img)
    for ch, k in ((0, k_rb), (1, k_g), (2, k_rb)):
        out[..., ch] = convolve(mosaic[..., ch], k, mode="mirror")
    return out


#: the fixed perturbations of the robustness set: name -> (what, parameter)
ROBUST_PERTURBATIONS: dict[str, tuple[str, float]] = {
    "bright+10": ("gain", 1.10),
    "bright-10": ("gain", 0.90),
    "stain": ("stain", 0.08),
    "jpeg": ("jpeg", 75),
    "noise": ("noise", 0.02),
}


def perturb_pair(lr: np.ndarray, hr: np.ndarray, kind: str,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One fixed, deterministic perturbation of a [0, 1] pair (see ROBUST_PERTURBATIONS):
    brightness and stain change both images, JPEG and noise change the LR input only."""
    what, p = ROBUST_PERTURBATIONS[kind]
    if what == "gain":
        return lr * p, hr * p
    if what == "stain" and lr.shape[-1] == 3:
        scale = np.array([1 + p, 1 - p, 1 + p / 2], np.float32)
        shift = np.array([p / 2, -p / 2, 0.0], np.float32)
        return hed_jitter(lr, scale, shift), hed_jitter(hr, scale, shift)
    if what == "jpeg":
        return jpeg_round_trip(lr, int(p)), hr
    if what == "noise":
        rng = np.random.default_rng(seed)
        return lr + rng.standard_normal(lr.shape).astype(np.float32) * p, hr
    return lr, hr


def augmentations_for(recipe: str, intensity: float) -> Augmentations:
    """The augmentations of a TrainConfig: "robust" (default), "mild" (the camera
    degradations on few patches), "noisy" (LR noise on half the patches, nothing else of
    the camera path) or "off" (orientations and
    intensity jitter only)."""
    if recipe == "off":
        return Augmentations.off(intensity)
    if recipe == "mild":
        return Augmentations.mild(intensity)
    if recipe == "noisy":
        return Augmentations.noisy(intensity)
    return Augmentations(intensity=intensity)
