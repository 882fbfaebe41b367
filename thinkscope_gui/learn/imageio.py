"""Image file I/O for `main.py enhance`: PNG/TIFF in, PNG/TIFF out; TIFF output carries
the new (HR) pixel size in its resolution tags and ImageJ / JSON description metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ModelMismatchError
from .infer import PIXEL_TOLERANCE, Enhancer
from .sources import read_image


def write_image(path: str | Path, img: np.ndarray, pixel_size_um: float | None = None,
                extra: dict | None = None) -> Path:
    """Write PNG or TIFF (by suffix). 16-bit RGB cannot be PNG: it becomes a .tif."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".png" and img.dtype == np.uint16 and img.ndim == 3:
        path = path.with_suffix(".tif")
        suffix = ".tif"
    if suffix in (".tif", ".tiff"):
        import tifffile

        kw: dict = {"photometric": "rgb" if img.ndim == 3 else "minisblack"}
        if pixel_size_um:
            res = 1.0 / pixel_size_um
            if img.dtype == np.uint8 or img.ndim == 2:   # ImageJ-readable calibration
                kw.update(imagej=True, resolution=(res, res),
                          metadata={"unit": "um", **({"Info": json.dumps(extra)}
                                                     if extra else {})})
            else:                                        # ImageJ has no 16-bit RGB
                kw.update(resolution=(res * 1e4, res * 1e4), resolutionunit="CENTIMETER",
                          description=json.dumps({"pixel_size_um": pixel_size_um,
                                                  "unit": "um", **(extra or {})}))
        if img.dtype == np.float64:
            img = img.astype(np.float32)
        tifffile.imwrite(str(path), img, **kw)
    else:
        from PIL import Image

        Image.fromarray(img).save(path)
    return path


def read_pixel_size_um(path: str | Path) -> float | None:
    """Pixel size from TIFF resolution tags (µm), or None when unknown."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    with tifffile.TiffFile(str(path)) as tf:
        page = tf.pages[0]
        tag = page.tags.get("XResolution")
        if tag is None:
            return None
        num, den = tag.value
        if not num:
            return None
        px_per_unit = num / den
        unit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 2
        ij = tf.imagej_metadata or {}
        if ij.get("unit") in ("um", "micron", "µm"):
            return 1.0 / px_per_unit
        if unit == 3:
            return 1e4 / px_per_unit
        if unit == 2:
            return 25400.0 / px_per_unit if px_per_unit > 1 else None
        return None


def enhance_file(enh: Enhancer, src: str | Path, dst: str | Path,
                 bit_depth: int | None = None) -> Path:
    """Enhance one file; the output records the model and its HR pixel size. A TIFF whose
    own pixel size says it came from another objective is refused (ModelMismatchError)."""
    px = read_pixel_size_um(src)
    want = enh.meta.lr_pixel_size_um
    if px is not None and abs(px - want) / want > PIXEL_TOLERANCE:
        raise ModelMismatchError(
            f"{src}: pixel size {px:g} µm, but this model expects {enh.lr_profile.label} "
            f"images at {want:g} µm/px (objective {enh.lr_profile.label}, "
            f"NA {enh.lr_profile.na:g})")
    img = read_image(Path(src))
    out = enh.enhance(img, bit_depth=bit_depth)
    extra = {"enhanced_by": "ThinkScope", "model": str(enh.path), "source": str(src),
             "objective": enh.hr_profile.label, "scale": enh.scale}
    return write_image(dst, out, enh.meta.hr_pixel_size_um, extra)
