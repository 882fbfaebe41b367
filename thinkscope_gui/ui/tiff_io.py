"""Save frames as TIFF with their pixel size, readable by Fiji/napari (no Qt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile


def save_tiff(path: str | Path, image: np.ndarray, pixel_size_um: float,
              info: dict[str, Any] | None = None) -> Path:
    """ImageJ-style TIFF: resolution in pixels per µm and unit 'um' in the metadata;
    ``info`` (objective, model, exposure, …) goes to ImageJ's Info text, one
    ``key = value`` per line (Fiji: Image ▸ Show Info)."""
    path = Path(path)
    res = (1.0 / pixel_size_um, 1.0 / pixel_size_um)
    meta: dict[str, Any] = {"unit": "um", "spacing": pixel_size_um}
    if info:
        meta["Info"] = "\n".join(f"{k} = {v}" for k, v in info.items())
    if image.ndim == 3 and image.dtype == np.uint8:
        tifffile.imwrite(path, image, imagej=True, photometric="rgb", resolution=res,
                         metadata=meta)
    elif image.ndim == 3:
        tifffile.imwrite(path, np.moveaxis(image, -1, 0), imagej=True, resolution=res,
                         metadata={**meta, "axes": "CYX"})
    else:
        tifffile.imwrite(path, image, imagej=True, resolution=res, metadata=meta)
    return path


def read_info(path: str | Path) -> dict[str, str]:
    """The ``info`` written by :func:`save_tiff` (empty if none)."""
    with tifffile.TiffFile(path) as tif:
        text = (tif.imagej_metadata or {}).get("Info", "")
    pairs = (line.split(" = ", 1) for line in str(text).splitlines() if " = " in line)
    return {k: v for k, v in pairs}


def read_pixel_size_um(path: str | Path) -> float:
    """Pixel size (µm) from a TIFF written by :func:`save_tiff`."""
    with tifffile.TiffFile(path) as tif:
        num, den = tif.pages[0].tags["XResolution"].value
        return den / num
