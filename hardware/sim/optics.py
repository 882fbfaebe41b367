"""Objective physics for the simulator: incoherent bright-field OTF with defocus.

The transfer function per colour channel is the diffraction-limited incoherent OTF of a
circular pupil (cutoff 2·NA/λ) times Stokseth's defocus factor, so resolution follows NA
and wavelength and depth of field shrinks with NA. Camera pixels add a box MTF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

from hardware.optics import WAVELENGTHS_UM, incoherent_otf  # noqa: F401 - re-exported

CAMERA_PITCH_UM = 6.5
IMMERSION_INDEX = {"dry": 1.0, "water": 1.333, "oil": 1.518}


@dataclass(frozen=True)
class SimOptics:
    """Physical truth of one objective in the simulator (calibration must discover it)."""

    magnification: float
    na: float
    immersion: str
    pixel_size_um: float
    true_offset_xy_um: tuple[float, float] = (0.0, 0.0)
    """Where the field centre really lands relative to the 10x, µm."""
    true_parfocal_z_um: float = 0.0
    """Focus offset relative to the 10x: sharp at slide_surface_z + this."""
    true_rotation_deg: float = 0.0
    """Image rotation about the field centre (turret/camera misalignment)."""
    condenser_na: float | None = None
    """Köhler condenser NA (partially coherent imaging); None = incoherent (ideal stand)."""

    @property
    def n_medium(self) -> float:
        return IMMERSION_INDEX[self.immersion]

    def cutoff(self, wavelength_um: float) -> float:
        """Incoherent cutoff frequency 2·NA/λ in cycles/µm."""
        return 2.0 * self.na / wavelength_um

    def blur_radius_um(self, dz_um: float) -> float:
        """Geometric radius of the defocus blur disc, |dz|·tan(α)."""
        sin_a = min(self.na / self.n_medium, 0.999)
        return abs(dz_um) * sin_a / math.sqrt(1.0 - sin_a * sin_a)

    def defocus_wavefront_per_um(self) -> float:
        """Marginal-ray defocus path difference per µm of defocus: n(1 - cos α)."""
        n = self.n_medium
        sin_a = min(self.na / n, 0.999)
        return n * (1.0 - math.sqrt(1.0 - sin_a * sin_a))


DEFAULT_SIM_OPTICS: dict[str, SimOptics] = {
    "10x": SimOptics(10.0, 0.30, "dry", CAMERA_PITCH_UM / 10.0),
    "40x": SimOptics(40.0, 0.95, "dry", CAMERA_PITCH_UM / 40.0, (3.2, -2.1), 1.8, 0.45),
    "100x": SimOptics(100.0, 1.40, "oil", CAMERA_PITCH_UM / 100.0, (-2.4, 3.7), -2.6, -0.62),
}


def defocus_factor(nu: np.ndarray, w_um: float, wavelength_um: float) -> np.ndarray:
    """Stokseth (1969) defocus factor jinc(4πW/λ · s(1 - s/2)), s = 2·nu (Hopkins units).

    W is the marginal defocus wavefront error; for large W this tends to the geometric
    blur-disc OTF, near focus it reproduces the diffraction-limited depth of field.
    """
    s = 2.0 * np.clip(np.abs(nu), 0.0, 1.0)
    arg = (4.0 * math.pi * abs(w_um) / wavelength_um) * s * (1.0 - s / 2.0)
    out = np.ones_like(arg)
    nz = arg > 1e-8
    out[nz] = 2.0 * special.j1(arg[nz]) / arg[nz]
    return out


RADIAL_SAMPLES = 4096


@lru_cache(maxsize=64)
def radial_table(optics: SimOptics, dz_um: float, channel: int) -> tuple[np.ndarray, float]:
    """OTF(|f|) sampled on [0, cutoff] for fast lookup: (table, samples per cycle/µm)."""
    lam = WAVELENGTHS_UM[channel]
    fc = optics.cutoff(lam)
    nu = np.linspace(0.0, 1.0, RADIAL_SAMPLES)
    w = dz_um * optics.defocus_wavefront_per_um()
    tab = incoherent_otf(nu) * defocus_factor(nu, w, lam)
    tab = np.append(tab, 0.0).astype(np.float32)  # index RADIAL_SAMPLES = beyond cutoff
    return tab, (RADIAL_SAMPLES - 1) / fc


def otf_2d(optics: SimOptics, dz_um: float, channel: int, fr: np.ndarray) -> np.ndarray:
    """OTF at radial frequencies `fr` (cycles/µm) via the radial table."""
    tab, scale = radial_table(optics, round(dz_um, 4), channel)
    idx = np.minimum((fr * np.float32(scale) + np.float32(0.5)).astype(np.int32), RADIAL_SAMPLES)
    return tab[idx]
