"""Image file I/O for `main.py enhance`: PNG/TIFF in, PNG/TIFF out; TIFF output carries
the new (HR) pixel size by the one convention of :mod:`thinkscope_gui.tiff`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from thinkscope_gui.tiff import read_pixel_size_um, tiff_kwargs, write_tiff

from .errors import ModelMismatchError
from .infer import PIXEL_TOLERANCE, Enhancer


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
        write_tiff(path, img, pixel_size_um, extra)
    else:
        from PIL import Image

        Image.fromarray(img).save(path)
    return path


class ImageFileError(ValueError):
    """An input image cannot be read or is of a kind enhance does not handle."""


#: input suffixes enhance reads (JPEG in only: outputs are PNG/TIFF, lossless)
INPUT_EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
#: the largest input enhance reads, in pixels (PIL's own decompression-bomb limit); a
#: bigger one, or a TIFF header claiming one, is refused before any pixel is allocated
MAX_PIXELS = 178_956_970


def _missing(path: Path) -> str:
    """Why ``path`` is not a readable file, in words."""
    if path.is_dir():
        return f"{path}: is a folder, not an image file"
    if path.is_symlink():
        return f"{path}: dangling symbolic link (to {os.readlink(path)})"
    return f"{path}: no such file"


def read_input(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """An image to enhance as (pixels, alpha or None): pixels (H,W) or (H,W,3) uint8/uint16
    or float32; alpha (H,W) kept apart so it passes through unchanged. Anything unreadable
    or unsupported -> ImageFileError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(_missing(path))
    if path.stat().st_size == 0:
        raise ImageFileError(f"{path}: empty file (0 bytes)")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic[:2] in (b"II", b"MM"):  # by content: a TIFF named .png (or v.v.) still reads
            a = _read_tiff(path)
        else:
            a = _read_pil(path)
    except ImageFileError:
        raise
    except MemoryError as e:
        raise ImageFileError(f"{path}: too large to read into memory") from e
    except Exception as e:  # noqa: BLE001 - decoders raise many kinds; one line for all
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ImageFileError(f"{path}: not a readable PNG/TIFF/JPEG image ({first})") from e
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # planar TIFF
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (2, 3, 4)):
        raise ImageFileError(f"{path}: unsupported image layout {a.shape} (expected grey, "
                             "grey+alpha, RGB or RGBA)")
    if a.dtype in (np.float64, np.float16):
        a = a.astype(np.float32)
    elif a.dtype == np.bool_:  # bilevel TIFF: black and white
        a = a.astype(np.uint8) * np.uint8(255)
    elif (a.dtype.kind in "iu" and a.dtype not in (np.uint8, np.uint16) and a.size
          and a.min() >= 0 and a.max() <= 65535):
        # signed or 32-bit TIFFs of camera counts (never negative, within 16 bits here)
        a = a.astype(np.uint8 if a.dtype.itemsize == 1 else np.uint16)
    if a.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageFileError(f"{path}: unsupported sample type {a.dtype} (8/16-bit integer "
                             "or 32-bit float in 0..1)")
    if min(a.shape[:2]) < 2:
        raise ImageFileError(f"{path}: image too small ({a.shape[1]}x{a.shape[0]} px)")
    if a.dtype == np.float32:
        _check_float(path, a)
    alpha = None
    if a.ndim == 3 and a.shape[-1] in (2, 4):
        alpha = np.ascontiguousarray(a[..., -1])
        a = a[..., :-1]
        if a.shape[-1] == 1:
            a = a[..., 0]
    return np.ascontiguousarray(a), alpha


def _check_float(path: Path, a: np.ndarray) -> None:
    """Float pixels must be finite and in [0, 1] (learn.normalise's unit range): NaN would
    smear over the network's receptive field and values above 1 would come out clipped, so
    either is refused with the numbers rather than written as a wrong image."""
    finite = np.isfinite(a)
    bad = int(a.size - np.count_nonzero(finite))
    if bad:
        raise ImageFileError(f"{path}: {bad} NaN/infinite pixel(s); enhance needs finite "
                             "values (e.g. Fiji: Process > Math > Remove NaNs)")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageFileError(f"{path}: float pixels span {lo:g}..{hi:g}; enhance takes float "
                             "images in 0..1 (rescale, or save as 8/16-bit)")


def _too_big(path: Path, h: int, w: int) -> None:
    if h * w > MAX_PIXELS:
        raise ImageFileError(f"{path}: {w}x{h} px is too large (limit {MAX_PIXELS // 10**6} "
                             "Mpx); crop or split it first")


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(str(path)) as tf:
        pages = len(tf.pages)
        series = tf.series[0] if tf.series else None
        shape = tuple(series.shape) if series is not None else ()
        squeezed = [n for n in shape if n != 1]
        if pages > 1 or len(squeezed) > 3:
            raise ImageFileError(
                f"{path}: multi-page TIFF ({pages} pages) - enhance takes single images; "
                "save the pages as separate files (Fiji: Image > Stacks > Stack to Images)")
        page = tf.pages[0]
        _too_big(path, int(page.imagelength), int(page.imagewidth))
        a = tf.asarray()
    if a.ndim > 3:  # OME/ImageJ axes of length 1 (T, Z, C of a single plane)
        a = a.reshape([n for n in a.shape if n != 1] or [1])
    return a


def _check_png_depth(path: Path) -> None:
    """PIL reads 16-bit colour PNGs as 8-bit: refused, rather than silently enhanced and
    written back at 8 bits."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6):
        raise ImageFileError(f"{path}: 16-bit colour PNG, which this reader would cut to 8 "
                             "bits; save it as a 16-bit TIFF (or convert it to 8-bit first)")


def file_bit_depth(path: str | Path, img: np.ndarray) -> int | None:
    """Significant bits a 16-bit TIFF says it has: ThinkScope's own metadata (`snap`, the
    GUI's *Save TIFF*) or Micro-Manager's ``BitDepth``. None when it says nothing, or when
    its pixels exceed what it claims (wrong metadata must not clip real data)."""
    if img.dtype != np.uint16 or not img.size:
        return None
    import tifffile

    from thinkscope_gui.tiff import read_tiff_meta

    claims: list[Any] = []
    try:
        claims.append(read_tiff_meta(path).get("bit_depth"))
        with tifffile.TiffFile(str(path)) as tf:
            mm = tf.micromanager_metadata or {}
            summary = mm.get("Summary") if isinstance(mm, dict) else None
            if isinstance(summary, dict):
                claims.append(summary.get("BitDepth"))
            tag = tf.pages[0].tags.get(51123)  # Micro-Manager's per-image JSON
            if tag is not None and isinstance(tag.value, dict):
                claims.append(tag.value.get("BitDepth"))
    except Exception:  # noqa: BLE001 - no readable hint is the same as no hint
        return None
    top = int(img.max())
    for c in claims:
        try:
            b = int(c)
        except (TypeError, ValueError):
            continue
        if 8 < b <= 16 and top <= 2**b - 1:
            return b
    return None


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        _too_big(path, im.height, im.width)
        if im.format == "PNG":
            _check_png_depth(path)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            raise ImageFileError(f"{path}: animated/multi-frame image ({frames} frames) - "
                                 "enhance takes single images")
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
        elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB" if im.mode != "1" else "L")
        elif im.mode in ("I", "I;16B", "I;16L", "I;16N"):
            im = im.convert("I;16") if im.mode != "I" else im
        im = ImageOps.exif_transpose(im)  # a phone/camera JPEG's EXIF orientation
        a = np.asarray(im)
    if a.dtype == np.int32:  # PIL's 32-bit integer mode, as PNG 16-bit sometimes arrives
        if a.min() < 0 or a.max() > 65535:
            raise ImageFileError(f"{path}: 32-bit integer pixels out of the 16-bit range")
        a = a.astype(np.uint16)
    return a


def enhance_file(enh: Enhancer, src: str | Path, dst: str | Path,
                 bit_depth: int | None = None, *, band: int | None = None,
                 progress: Any = None, cancel: Any = None,
                 taken: Collection[Path] = ()) -> Path:
    """Enhance one file; the output records the model and its HR pixel size. A TIFF whose
    own pixel size says it came from another objective is refused (ModelMismatchError).

    The image is enhanced band by band and streamed into the output file (learn/tiled.py),
    written under a temporary name and renamed when complete: a failure or a cancel never
    leaves a half image. Alpha passes through (resampled to the output grid, values kept).
    ``progress(done, total)`` is called per band; ``cancel()`` True stops between bands.
    ``taken``: the batch's planned and written outputs; when the output format changes the
    name onto one of them (a.png that is really a 16-bit colour TIFF, beside a.tif),
    this one is written as ``<input name>.tif`` instead of overwriting it."""
    from thinkscope_gui.tiff import partial_path

    from .tiled import PngStream, enhance_bands, finish, n_bands, write_tiff_stream

    src, dst = Path(src), Path(dst)
    try:
        px = read_pixel_size_um(src)
    except Exception:  # noqa: BLE001 - unreadable tags: read_input says why below
        px = None
    want = enh.meta.lr_pixel_size_um
    if px is not None and abs(px - want) / want > PIXEL_TOLERANCE:
        raise ModelMismatchError(
            f"{src}: pixel size {px:g} µm, but this model expects {enh.lr_profile.label} "
            f"images at {want:g} µm/px (objective {enh.lr_profile.label}, "
            f"NA {enh.lr_profile.na:g})")
    img, alpha = read_input(src)
    if bit_depth is None:  # a 12-bit camera's uint16 TIFF that says so is scaled as 12-bit
        bit_depth = file_bit_depth(src, img)
    if alpha is not None and alpha.dtype != img.dtype:
        alpha = alpha.astype(img.dtype) if img.dtype.kind == alpha.dtype.kind else None
    extra = {"enhanced_by": "ThinkScope", "model": str(enh.path), "source": str(src),
             "objective": enh.hr_profile.label, "scale": enh.scale}
    H, W = enh.output_shape(*img.shape[:2])
    channels = (img.shape[2] if img.ndim == 3 else 1) + int(alpha is not None)
    out_dtype = np.dtype(np.float32) if img.dtype == np.float32 else img.dtype
    suffix = dst.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        dst = dst.with_suffix(".png")  # lossless: JPEG would add back the artefacts
        suffix = ".png"
    if suffix == ".png" and (out_dtype == np.float32 or (out_dtype == np.uint16 and
                                                         channels >= 3)):
        dst = dst.with_suffix(".tif")  # PNG has no float and ThinkScope writes no 16-bit RGB PNG
        suffix = ".tif"
        if dst in taken:
            dst = dst.with_name(src.name + ".tif")
    if suffix not in (".png", ".tif", ".tiff"):
        raise ImageFileError(f"{dst}: output must be .png, .tif or .tiff")
    if same_file(src, dst):
        raise ImageFileError(f"{dst}: is the input itself; give another output name "
                             "(enhance never overwrites its input)")
    if dst.is_dir():
        raise ImageFileError(f"{dst}: is a folder; give an output file name")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageFileError(f"{dst}: cannot create its folder: {e.strerror or e}") from e
    total = n_bands(enh, img.shape, band)
    done = [0]

    def blocks() -> Any:
        for rows in enhance_bands(enh, img, alpha=alpha, bit_depth=bit_depth, band=band,
                                  cancel=cancel):
            yield rows
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

    tmp = partial_path(dst)
    shape = (H, W) if channels == 1 else (H, W, channels)
    try:
        if suffix == ".png":
            w = PngStream(tmp, H, W, channels, out_dtype)
            try:
                for rows in blocks():
                    w.write(rows)
                w.close()
            except BaseException:
                w.abort()
                raise
        else:
            write_tiff_stream(tmp, blocks(), shape, out_dtype,
                              tiff_kwargs(out_dtype, channels, alpha is not None,
                                          enh.meta.hr_pixel_size_um, extra))
    except BaseException as e:
        with contextlib.suppress(OSError):  # a read-only folder refuses the unlink too
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ImageFileError(f"{dst}: cannot write the output: {e.strerror or e}") from e
        raise
    try:
        return finish(tmp, dst)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ImageFileError(f"{dst}: cannot write the output: {e.strerror or e}") from e


def same_file(a: Path, b: Path) -> bool:
    """True when ``b`` is the file ``a`` (through links, `..` or a case-folding file system)."""
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def output_name(src: Path, out_dir: Path) -> Path:
    """Where a folder batch writes ``src``: its name in ``out_dir``, JPEG as PNG."""
    name = src.name
    if src.suffix.lower() in (".jpg", ".jpeg"):
        name = src.stem + ".png"
    return out_dir / name
