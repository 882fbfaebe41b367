"""Inference: Enhancer turns LR frames into HR-like frames with a trained model file.

Same dtype and channels out as in, shape round(H*scale) x round(W*scale). Large frames
are processed in overlapping tiles whose outputs are blended with complementary linear
ramps (weights sum to one), so tiling is invisible. On CPU the quality model runs through
OpenVINO when it is installed (learn/engines.py: same output, about twice as fast), in
tiles of one compiled shape; otherwise, and for every other model, through torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hardware.profiles import ObjectiveProfile

from . import engines
from .errors import ModelFileError, ModelMismatchError
from .meta import ModelMeta
from .modelfile import DEFAULT_MODELS, load_model
from .models import is_exact, out_size, receptive_radius, scale_fraction
from .normalise import denormalise, divisor_for, from_unit, normalise, to_unit

PIXEL_TOLERANCE = 0.02  #: relative pixel-size mismatch accepted (calibration jitter)
#: LR px a tile of the compiled engine owns (plus Enhancer.overlap of context each side).
#: Smaller tiles run faster per pixel (cache), larger ones recompute less context: a 1024²
#: still with the quality model on 2 threads took 8.1 s with 512 (584² compiled), 9.7 s
#: with 256 (328²), 15.6 s on torch (medians of 3 interleaved rounds, load 3.6-4.3)
ENGINE_TILE = 512


def pick_device(device: str | None = None) -> str:
    """CUDA when available, else CPU (an explicit choice always wins)."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class Enhancer:
    """A loaded model ready to enhance frames; thread-safe for one caller at a time."""

    def __init__(self, model: torch.nn.Module, meta: ModelMeta, device: str | None = None,
                 tile: int = 512, path: Path | None = None) -> None:
        self.meta = meta
        self.path = path
        self.device = pick_device(device)
        self.half = self.device.startswith("cuda")
        self.model = model.to(self.device).eval()
        if self.half:  # why: fp16 + channels_last doubles GPU throughput for convs
            # (torch's stubs omit Module.to's memory_format keyword)
            self.model = self.model.half().to(  # type: ignore[call-overload]
                memory_format=torch.channels_last)
        self.scale = float(meta.scale)
        self._q = scale_fraction(self.scale)[1]
        self._exact = is_exact(self.scale)  # else tiles carry a sub-pixel phase
        r = receptive_radius(meta.arch, meta.arch_params)
        self.radius = r                                      # LR px spoiled at tile edges
        # tile edges on multiples of 2q at a fraction scale: a tile from a0 to the frame's
        # end then has round((h - a0) s) == round(h s) - a0 s (a0 s is an even integer,
        # and round() rounds halves to even), so the last tile reaches the last output row
        g = self.grid = 2 * self._q if self._exact else self._q
        self.overlap = int(-(-2 * r // g) * g)   # LR px, multiple of the grid
        self.tile = max(int(tile) - int(tile) % g, 4 * self.overlap)
        et = max(ENGINE_TILE - ENGINE_TILE % g, 2 * self.overlap)
        #: the one LR tile shape the engine is compiled for (core + context both sides)
        self.engine_shape = (et + 2 * self.overlap,) * 2
        self._engine_tile = et
        #: what enhanced the frames so far: "openvino (...)" / "torch (why)" (for the CLI)
        self.engines_used: set[str] = set()

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None,
             tile: int = 512) -> Enhancer:
        """Load a model file (None or "fast": the shipped default fast model; "quality":
        the shipped quality model)."""
        if path is None or (str(path) in DEFAULT_MODELS and not Path(path).is_file()):
            p = DEFAULT_MODELS[str(path or "fast")]
            if not p.is_file():
                raise ModelFileError(f"the default model {p} is missing; train one with "
                                     "`python main.py train` or pass --model")
        else:
            p = Path(path)
        model, meta = load_model(p)
        return cls(model, meta, device=device, tile=tile, path=p)

    # -- objective checks ---------------------------------------------------------------
    @property
    def lr_profile(self) -> ObjectiveProfile:
        return self.meta.lr_profile

    @property
    def hr_profile(self) -> ObjectiveProfile:
        return self.meta.hr_profile

    def check_objective(self, profile: ObjectiveProfile) -> None:
        """Refuse frames from another objective or sampling than the model was trained on."""
        want = self.meta.lr_profile
        rel = abs(profile.pixel_size_um - self.meta.lr_pixel_size_um) / self.meta.lr_pixel_size_um
        if profile.label != want.label or rel > PIXEL_TOLERANCE:
            raise ModelMismatchError(
                f"this model expects the {want.label} objective ({want.na:g} NA, "
                f"{self.meta.lr_pixel_size_um:g} µm/px) and enhances it to "
                f"{self.hr_profile.label}; "
                f"got {profile.label} ({profile.na:g} NA, {profile.pixel_size_um:g} µm/px)")

    # -- enhancement --------------------------------------------------------------------
    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        return out_size(h, w, self.scale)

    def divisor(self, dtype: object, bit_depth: int | None = None) -> float:
        """Full scale of a frame: its own bit depth (``Frame.bit_depth``) when given, else
        the bit depth this model was trained on (a uint16 from a 12-bit camera is not
        65535 at full scale), else the dtype's width. See learn.normalise."""
        return divisor_for(dtype, bit_depth, self.meta.bit_depth)

    def enhance(self, frame: np.ndarray, bit_depth: int | None = None) -> np.ndarray:
        """Enhance one (H,W) or (H,W,C) uint8/uint16/float32 frame (floats in [0,1]).

        bit_depth: significant bits of integer frames (e.g. 12 in a uint16), as the camera
        reports them (``Frame.bit_depth``); None: the model's recorded bit depth."""
        a = np.asarray(frame)
        if a.ndim not in (2, 3):
            raise ValueError(f"expected (H, W) or (H, W, C) frame, got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"empty frame (shape {a.shape})")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError("frame has NaN/infinite pixels; they would spread over the "
                             "network's receptive field (replace them first)")
        divisor = self.divisor(a.dtype, bit_depth)
        x = to_unit(a, divisor)
        x = x[..., None] if x.ndim == 2 else x
        c_in, c_model = x.shape[-1], self.meta.channels
        if c_in == c_model:
            y = self._run(x)
        elif c_model == 3 and c_in == 1:   # mono frame, RGB model: grey in, grey out
            y = self._run(np.repeat(x, 3, axis=-1)).mean(-1, keepdims=True)
        elif c_model == 1:                 # mono model: each channel on its own
            y = np.concatenate([self._run(x[..., i:i + 1]) for i in range(c_in)], axis=-1)
        else:
            hint = ""
            if c_in in (2, 4):
                hint = " (an alpha channel? enhance the colour channels; " \
                       "learn.imageio.read_input splits alpha off)"
            elif a.ndim == 3 and a.shape[0] in (1, 3, 4):
                hint = f" (shape {a.shape} looks channels-first; frames are (H, W, C))"
            raise ValueError(f"model has {c_model} channels, frame has {c_in}{hint}")
        y = y[..., 0] if a.ndim == 2 else y
        return from_unit(y, a.dtype, divisor)

    @torch.inference_mode()
    def _forward(self, x: np.ndarray, phase: tuple[float, float] = (0.0, 0.0),
                 engine: engines.OpenVinoTile | None = None) -> np.ndarray:
        if engine is not None:
            return self._forward_engine(x, engine)
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device)
        if self.half:
            t = t.half().contiguous(memory_format=torch.channels_last)
        norm = self.meta.normalisation
        t = normalise(t, norm)  # not in place: t may view the caller's array
        y = self.model(t, phase) if (phase[0] or phase[1]) else self.model(t)
        y = denormalise(y, norm, inplace=True).clamp_(0, 1)
        return y[0].float().permute(1, 2, 0).cpu().numpy()

    def _forward_engine(self, x: np.ndarray, engine: engines.OpenVinoTile) -> np.ndarray:
        """As _forward, through the compiled engine (numpy in and out, channels last)."""
        norm = self.meta.normalisation
        y = denormalise(engine(normalise(x, norm)), norm, inplace=True)
        return np.clip(y, 0, 1, out=y)

    def enhance_tta(self, frame: np.ndarray, bit_depth: int | None = None) -> np.ndarray:
        """Stills only: :meth:`enhance` averaged over the 8 rotations/flips (learn/tta.py),
        8x the compute; never used by the live view."""
        from .tta import enhance_tta

        return enhance_tta(self, frame, bit_depth)

    def consistency(self, frame: np.ndarray, enhanced: np.ndarray,
                    bit_depth: int | None = None) -> np.ndarray:
        """LR-grid map of where `enhanced` disagrees with `frame` once re-imaged through
        this model's input objective (see consistency.consistency_map), in units of the
        camera's full scale (the same divisor as :meth:`enhance`)."""
        from .consistency import consistency_map

        return consistency_map(frame, enhanced, self.lr_profile.na,
                               self.meta.lr_pixel_size_um, self.meta.hr_pixel_size_um,
                               divisor=self.divisor(np.asarray(frame).dtype, bit_depth))

    def consistency_sigma(self, frame: np.ndarray, enhanced: np.ndarray,
                          bit_depth: int | None = None,
                          prev_frame: np.ndarray | None = None) -> np.ndarray:
        """Like :meth:`consistency` but in units of the frame's own noise σ (see
        consistency.consistency_sigma): noise reads ~1, invented detail many σ.
        ``prev_frame``: the camera's frame before ``frame``, of the same still field (the
        noise comes from the two); None: estimated from the frame."""
        from .consistency import consistency_sigma

        return consistency_sigma(frame, enhanced, self.lr_profile.na,
                                 self.meta.lr_pixel_size_um, self.meta.hr_pixel_size_um,
                                 divisor=self.divisor(np.asarray(frame).dtype, bit_depth),
                                 prev_frame=prev_frame)

    def engine(self, h: int, w: int) -> engines.OpenVinoTile | str:
        """The compiled engine for an (h, w) frame, or why torch runs it. A frame (or a
        thin band) that fills less than half of the engine's tile stays on torch: padding
        every tile to the compiled shape would cost more than the engine saves."""
        sh, sw = self.engine_shape
        if self.half:
            return "fp16 on CUDA"
        if 2 * min(h, sh) * min(w, sw) < sh * sw:
            return f"frame fills less than half of the engine's {sh}x{sw} tile"
        return engines.engine_for(self.model, self.meta.arch, self.path, self.meta.channels,
                                  self.scale, self._exact, self.engine_shape,
                                  torch.get_num_threads(), self.device)

    def _run(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[:2]
        eng = self.engine(h, w)
        if isinstance(eng, str):
            self.engines_used.add(f"torch ({eng})")
            engines.note(eng)
            if h <= self.tile + 2 * self.overlap and w <= self.tile + 2 * self.overlap:
                return self._forward(x)
            return self._tiled(x, self.tile)
        self.engines_used.add(f"openvino ({eng.shape[0]}x{eng.shape[1]} tiles, "
                              f"{eng.threads} threads)")
        return self._tiled(x, self._engine_tile, eng)

    def _tiled(self, x: np.ndarray, T: int,
               engine: engines.OpenVinoTile | None = None) -> np.ndarray:
        """Overlapping tiles on the LR grid step q; complementary ramps over the overlap.
        At a scale with no small fraction a tile's first HR pixel round(a0*s) is off the
        tile's own grid by a fraction of a pixel: the model renders the tile with that
        phase, so every tile lands exactly on the whole frame's HR grid."""
        h, w = x.shape[:2]
        s, m = self.scale, self.overlap
        if h <= T + 2 * m and w <= T + 2 * m:  # one tile: no blending
            return self._forward(x, engine=engine)
        H, W = self.output_shape(h, w)
        acc = np.zeros((H, W, x.shape[2]), np.float32)
        wsum = np.zeros((H, W, 1), np.float32)
        r = self.radius  # LR px at tile edges with zero weight (padding effects)
        # an axis that fits in one tile (core + both overlaps) is not cut (a band of rows)
        for y0 in (range(0, h, T) if h > T + 2 * m else (0,)):
            for x0 in (range(0, w, T) if w > T + 2 * m else (0,)):
                a0, a1 = max(0, y0 - m), (h if h <= T + 2 * m else min(h, y0 + T + m))
                b0, b1 = max(0, x0 - m), (w if w <= T + 2 * m else min(w, x0 + T + m))
                oy, ox = int(round(a0 * s)), int(round(b0 * s))
                phase = (0.0, 0.0) if self._exact else (oy - a0 * s, ox - b0 * s)
                out = self._forward(x[a0:a1, b0:b1], phase, engine)
                oh, ow = min(out.shape[0], H - oy), min(out.shape[1], W - ox)
                wy = _ramp(out.shape[0], a0 > 0, a1 < h, r * s, (2 * m - 2 * r) * s)[:oh]
                wx = _ramp(out.shape[1], b0 > 0, b1 < w, r * s, (2 * m - 2 * r) * s)[:ow]
                wgt = (wy[:, None] * wx[None, :])[..., None]
                acc[oy:oy + oh, ox:ox + ow] += out[:oh, :ow] * wgt
                wsum[oy:oy + oh, ox:ox + ow] += wgt
        return acc / np.maximum(wsum, 1e-8)


def _ramp(n: int, lo: bool, hi: bool, dead: float, width: float) -> np.ndarray:
    """1-D weight: 0 over `dead` px at an interior edge, then linear to 1 over `width`."""
    d = np.arange(n, dtype=np.float32) + 0.5
    wgt = np.ones(n, np.float32)
    if lo:
        wgt = np.minimum(wgt, np.clip((d - dead) / width, 0, 1))
    if hi:
        wgt = np.minimum(wgt, np.clip((n - d - dead) / width, 0, 1))
    return wgt
