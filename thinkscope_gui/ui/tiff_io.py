"""Save frames as TIFF with their pixel size, readable by Fiji/napari (no Qt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def save_tiff(path: str | Path, image: np.ndarray, pixel_size_um: float) -> Path:
    """ImageJ-style TIFF: resolution in pixels per µm and unit 'um' in the metadata."""
    path = Path(path)
    res = (1.0 / pixel_size_um, 1.0 / pixel_size_um)
    meta = {"unit": "um", "spacing": pixel_size_um}
    if image.ndim == 3 and image.dtype == np.uint8:
        tifffile.imwrite(path, image, imagej=True, photometric="rgb", resolution=res,
                         metadata=meta)
    elif image.ndim == 3:
        tifffile.imwrite(path, np.moveaxis(image, -1, 0), imagej=True, resolution=res,
                         metadata={**meta, "axes": "CYX"})
    else:
        tifffile.imwrite(path, image, imagej=True, resolution=res, metadata=meta)
    return path


def read_pixel_size_um(path: str | Path) -> float:
    """Pixel size (µm) from a TIFF written by :func:`save_tiff`."""
    with tifffile.TiffFile(path) as tif:
        num, den = tif.pages[0].tags["XResolution"].value
        return den / num
