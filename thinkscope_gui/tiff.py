"""THE TIFF convention for every image ThinkScope writes: raw snaps, saved live frames and
enhanced images (no Qt, no torch, so the CLI and the GUI use it without loading a network).

Pixel size in µm, readable by ImageJ/Fiji and tifffile alike:

* ImageJ can hold it (8-bit RGB, any greyscale): an ImageJ TIFF with ``unit=um`` and
  resolution in pixels per µm; our metadata (JSON) in ImageJ's ``Info`` (Image > Show Info).
* ImageJ cannot (16-bit or float RGB, alpha): resolution in pixels per centimetre with
  ResolutionUnit CENTIMETER (Fiji shows the same size in cm) and our metadata as JSON in
  the ImageDescription.

:func:`read_pixel_size_um` and :func:`read_tiff_meta` read both back.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_pixel_size_um", "read_tiff_meta", "tiff_kwargs", "write_tiff"]


def tiff_kwargs(dtype: np.dtype[Any] | type, channels: int, has_alpha: bool,
                pixel_size_um: float | None, extra: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """tifffile.imwrite arguments: photometric, alpha, and the calibration above."""
    extra = dict(extra or {})
    colour = channels - int(has_alpha) >= 3
    kw: dict[str, Any] = {"photometric": "rgb" if colour else "minisblack"}
    if has_alpha:
        kw["extrasamples"] = ("unassalpha",)
        if not colour:
            kw["planarconfig"] = "contig"
    if pixel_size_um:
        res = 1.0 / pixel_size_um
        if not has_alpha and (np.dtype(dtype) == np.uint8 or not colour):
            kw.update(imagej=True, resolution=(res, res),
                      metadata={"unit": "um", "Info": json.dumps(  # one key a line in Fiji
                          {"pixel_size_um": pixel_size_um, "unit": "um", **extra}, indent=1,
                          default=str, ensure_ascii=False)})
        else:
            kw.update(resolution=(res * 1e4, res * 1e4), resolutionunit="CENTIMETER",
                      description=json.dumps({"pixel_size_um": pixel_size_um, "unit": "um",
                                              **extra}, default=str), metadata=None)
    return kw


def write_tiff(path: str | Path, img: np.ndarray, pixel_size_um: float | None,
               extra: dict[str, Any] | None = None) -> Path:
    """Write one image (H,W), (H,W,3) or (H,W,4 with alpha) with its pixel size, under
    :func:`partial_path` and renamed when complete: a full disk or a signal never leaves a
    half TIFF under the real name (the partial file is removed)."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(img)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    channels = a.shape[2] if a.ndim == 3 else 1
    kw = tiff_kwargs(a.dtype, channels, channels in (2, 4), pixel_size_um, extra)
    tmp = partial_path(path)
    try:
        tifffile.imwrite(str(tmp), a, **kw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a read-only folder refuses the unlink too
            tmp.unlink(missing_ok=True)
        raise
    return path


def partial_path(dst: Path) -> Path:
    """Where an output is written before it is complete (renamed into place at the end)."""
    return dst.with_name(f".{dst.stem}.partial{dst.suffix}")


def read_pixel_size_um(path: str | Path) -> float | None:
    """Pixel size (µm) from a TIFF's resolution tags, or None when it has none."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    with tifffile.TiffFile(str(path)) as tf:
        page = tf.pages[0]
        tags = page.tags
        tag = tags.get("XResolution")
        if tag is None:
            return None
        num, den = tag.value
        if not num:
            return None
        px_per_unit = num / den
        unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
        ij = tf.imagej_metadata or {}
        if ij.get("unit") in ("um", "micron", "µm", "\\u00B5m"):
            return float(1.0 / px_per_unit)
        if unit == 3:
            return float(1e4 / px_per_unit)
        if unit == 2:
            return float(25400.0 / px_per_unit) if px_per_unit > 1 else None
        return None


def read_tiff_meta(path: str | Path) -> dict[str, Any]:
    """Our JSON metadata from a TIFF written by :func:`write_tiff` ({} when none)."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tf:
        ij = tf.imagej_metadata or {}
        text = ij.get("Info") or tf.pages[0].description
    try:
        out = json.loads(text)
    except (TypeError, ValueError):
        return {}
    # tifffile's own description ({"shape": ...}) is not ours: ours carries the pixel size
    return out if isinstance(out, dict) and "pixel_size_um" in out else {}
