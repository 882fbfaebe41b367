"""Large images enhanced band by band and streamed into the output file.

Why: a 6000x6000 frame enhanced in one piece held ~13x its output size in float buffers.
Here the input is cut into horizontal bands of LR rows, each enhanced with context rows
above and below (``Enhancer.overlap`` >= twice the network's receptive radius) through
the public ``Enhancer.enhance``, and only the band's own output rows are kept and written
at once. Band edges lie on multiples of the scale's denominator q (scale = p/q), and the
rows a band owns are ``round(y0*scale) .. round(y1*scale)`` in exact scaled coordinates,
so bands meet without seams for non-integer scales too. Peak memory is the input, one
band's buffers and the writer's row buffer: well under 2x the output size + a constant.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from thinkscope_gui.jobs import Cancelled

from .infer import Enhancer
from .models import receptive_radius, scale_fraction

#: LR pixels per band: bounds one band's float buffers (512 K LR px -> ~50 MB per float
#: copy at 2.5x RGB) while keeping the recomputed context rows a small fraction
BAND_PIXELS = 1 << 19


def band_rows(enh: Enhancer, width: int, band: int | None = None) -> int:
    """LR rows per band: a multiple of q, at least 4*q, about BAND_PIXELS / width, and at
    least the rows one tile of a compiled engine owns (a thinner band would pad every tile
    to the compiled shape and waste the engine's gain)."""
    q = _grid(enh)
    rows = band if band else max(4 * q, BAND_PIXELS // max(1, width), _engine_rows(enh, width))
    return max(q, rows - rows % q)


def _grid(enh: Enhancer) -> int:
    """LR step band edges lie on: the Enhancer's tile grid (2q at a scale p/q, see
    Enhancer.grid), so the last band reaches the last output row."""
    return int(getattr(enh, "grid", 0)) or scale_fraction(enh.scale)[1]


def _engine_rows(enh: Enhancer, width: int) -> int:
    """Rows one engine tile owns when this enhancer runs a band of ``width`` through a
    compiled engine, else 0. Not past 4x BAND_PIXELS: a very wide image keeps thin bands
    (and torch, see Enhancer.engine) rather than ~4x the band memory."""
    shape = getattr(enh, "engine_shape", None)
    if shape is None or not hasattr(enh, "engine"):
        return 0
    rows = shape[0] - 2 * int(enh.overlap)
    if rows * width > 4 * BAND_PIXELS:
        return 0
    return rows if not isinstance(enh.engine(shape[0], width), str) else 0


def upsample_alpha(alpha: np.ndarray, y0: int, y1: int, out_w: int, scale: float) -> np.ndarray:
    """Output rows Y0..Y1 of the alpha plane: each output pixel takes the alpha of the input
    pixel it lies in (no new values: masks stay masks, opaque stays opaque)."""
    h, w = alpha.shape
    ys = np.minimum(((np.arange(y0, y1) + 0.5) / scale).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(out_w) + 0.5) / scale).astype(np.int64), w - 1)
    return alpha[ys[:, None], xs[None, :]]


def enhance_bands(enh: Enhancer, img: np.ndarray, *, alpha: np.ndarray | None = None,
                  bit_depth: int | None = None, band: int | None = None,
                  cancel: Callable[[], bool] | None = None) -> Iterator[np.ndarray]:
    """Yield the enhanced image as consecutive blocks of output rows (alpha appended as the
    last channel when given). Raises :class:`thinkscope_gui.jobs.Cancelled` between bands when
    ``cancel()`` (the partial output is removed by the caller)."""
    h, w = img.shape[:2]
    s = enh.scale
    H, W = enh.output_shape(h, w)
    T = band_rows(enh, w, band)
    # context rows: the Enhancer's own tile overlap (>= twice the receptive radius)
    m = int(getattr(enh, "overlap", 0)) or 2 * receptive_radius(enh.meta.arch,
                                                                enh.meta.arch_params)
    m += (-m) % _grid(enh)
    for y0 in range(0, h, T):
        if cancel is not None and cancel():
            raise Cancelled("enhance cancelled")
        y1 = min(h, y0 + T)
        a0, a1 = max(0, y0 - m), min(h, y1 + m)
        out = enh.enhance(img[a0:a1], bit_depth=bit_depth)
        Y0, Y1 = int(round(y0 * s)), (H if y1 == h else int(round(y1 * s)))
        o0 = int(round(a0 * s))
        rows = out[Y0 - o0:Y1 - o0]
        if rows.shape[0] < Y1 - Y0:  # rounding at an awkward scale: repeat the last row
            pad = [(0, Y1 - Y0 - rows.shape[0])] + [(0, 0)] * (rows.ndim - 1)
            rows = np.pad(rows, pad, mode="edge")
        rows = rows[:, :W]
        del out
        if alpha is not None:
            a = upsample_alpha(alpha, Y0, Y1, W, s).astype(rows.dtype)
            rows = np.concatenate([rows if rows.ndim == 3 else rows[..., None],
                                   a[..., None]], axis=-1)
        yield rows


def n_bands(enh: Enhancer, shape: tuple[int, ...], band: int | None = None) -> int:
    """How many bands enhance_bands yields (for a progress bar)."""
    return math.ceil(shape[0] / band_rows(enh, shape[1], band))


# ---------------------------------------------------------------------------------------
# streaming writers
# ---------------------------------------------------------------------------------------
class PngStream:
    """A PNG written row block by row block (zlib stream, 'Sub' filter); 8/16 bit, 1-4
    channels (grey, grey+alpha, RGB, RGBA)."""

    def __init__(self, path: Path, height: int, width: int, channels: int,
                 dtype: np.dtype) -> None:
        if np.dtype(dtype) not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise ValueError(f"PNG holds 8 or 16 bit pixels, not {dtype}")
        self.depth = 8 if np.dtype(dtype) == np.uint8 else 16
        self.bpp = channels * self.depth // 8
        colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._f.write(b"\x89PNG\r\n\x1a\n")
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, self.depth, colour, 0, 0, 0))
        self._z = zlib.compressobj(6)
        self.rows_left = height

    def _chunk(self, tag: bytes, data: bytes) -> None:
        self._f.write(struct.pack(">I", len(data)) + tag + data
                      + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    def write(self, rows: np.ndarray) -> None:
        n = rows.shape[0]
        a = rows.astype(">u2", copy=False) if self.depth == 16 else rows
        b = np.ascontiguousarray(a).view(np.uint8).reshape(n, -1)
        filt = np.empty((n, b.shape[1] + 1), np.uint8)
        filt[:, 0] = 1  # Sub: each byte minus the byte one pixel to the left
        filt[:, 1:] = b
        filt[:, 1 + self.bpp:] -= b[:, :-self.bpp]
        data = self._z.compress(filt.tobytes())
        if data:
            self._chunk(b"IDAT", data)
        self.rows_left -= n

    def close(self) -> None:
        if self.rows_left != 0:
            raise ValueError(f"PNG stream ended {self.rows_left} rows short")
        self._chunk(b"IDAT", self._z.flush())
        self._chunk(b"IEND", b"")
        self._f.close()

    def abort(self) -> None:
        self._f.close()


def _strips(blocks: Iterator[np.ndarray], rows_per_strip: int) -> Iterator[bytes]:
    """Re-cut row blocks of any height into strips of rows_per_strip rows (TIFF layout)."""
    pending: list[np.ndarray] = []
    have = 0
    for block in blocks:
        pending.append(block)
        have += block.shape[0]
        while have >= rows_per_strip:
            buf = np.concatenate(pending, axis=0) if len(pending) > 1 else pending[0]
            yield np.ascontiguousarray(buf[:rows_per_strip]).tobytes()
            rest = buf[rows_per_strip:]
            pending, have = ([rest] if rest.shape[0] else []), rest.shape[0]
    if have:
        yield np.ascontiguousarray(np.concatenate(pending, axis=0)).tobytes()


def write_tiff_stream(path: Path, blocks: Iterator[np.ndarray], shape: tuple[int, ...],
                      dtype: np.dtype, tiff_kw: dict[str, Any]) -> None:
    """A TIFF written strip by strip from row blocks (tifffile's iterator interface)."""
    import tifffile

    row_bytes = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
    rps = max(1, (1 << 20) // max(1, row_bytes))
    tifffile.imwrite(str(path), data=_strips(blocks, rps), shape=shape, dtype=dtype,
                     rowsperstrip=rps, **tiff_kw)


def finish(tmp: Path, dst: Path) -> Path:
    os.replace(tmp, dst)
    return dst
