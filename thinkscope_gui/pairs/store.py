"""The durable HDF5 pair store (layout documented in docs/PAIRSTORE.md).

Why it looks like this: operators run acquisitions unattended for hours, so a crash or a
``kill -9`` must lose at most the pair in flight. Every record is appended (datasets grow
along axis 0), the file is flushed, and only then a *committed count* attribute is raised
and flushed again. Readers and resumed writers ignore rows past the committed count, and
a resumed writer truncates them. Plain gzip-chunked datasets keep the file readable by
h5py, napari and Fiji without plugins.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT = "thinkscope-pairs"
FORMAT_VERSION = 1
_COMPRESSION = {"compression": "gzip", "compression_opts": 1}
_STR = h5py.string_dtype()
#: free bytes kept in hand beyond the record itself (HDF5 metadata, B-tree splits)
RESERVE_BYTES = 1 << 20
_log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The store cannot be created, opened or written; the message says why."""


class StoreMismatchError(StoreError):
    """An existing file holds pairs of a different objective pair / sampling."""


class StorePlanError(StoreError):
    """Resuming a file with another acquisition plan than the one it holds."""


class StoreFullError(StoreError):
    """The disk is full (ENOSPC) or the file became unwritable while appending."""


@dataclass(frozen=True)
class StoreHeader:
    """File-level facts fixed at creation; a resumed run must match them exactly."""

    lr_profile_json: str
    hr_profile_json: str
    scale: float
    lr_frame_shape: tuple[int, ...]
    hr_frame_shape: tuple[int, ...]
    patch_lr_px: int
    dtype: str
    bit_depth: int
    plan_json: str = "{}"
    profiles_json: str = "{}"
    camera_json: str = "{}"
    software_json: str = "{}"
    source: str = ""

    @property
    def patch_hr_px(self) -> int:
        """HR patch side: ``round(patch_lr_px * scale)`` (on the exact HR grid, any scale)."""
        return int(round(self.patch_lr_px * self.scale))

    @property
    def channels(self) -> int:
        """Colour channels (1 for mono frames)."""
        return int(self.lr_frame_shape[2]) if len(self.lr_frame_shape) == 3 else 1


@dataclass
class LRTileRecord:
    """One raw LR frame with where and how it was taken."""

    tile_index: int
    ix: int
    iy: int
    stage_xy_um: tuple[float, float]
    z_um: float
    focus_score: float
    tissue_fraction: float
    frame: np.ndarray
    timestamp: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairRecord:
    """One matched pair (accepted or rejected) with its provenance."""

    tile_index: int
    lr_tile: int
    ix: int
    iy: int
    stage_xy_um: tuple[float, float]
    hr_stage_xy_um: tuple[float, float]
    z_um: tuple[float, float]
    focus_score: tuple[float, float]
    transform: tuple[float, float, float]
    correlation: float
    crop_origin: tuple[int, int]
    accepted: bool
    reason: str
    tissue: bool
    lr_patch: np.ndarray
    hr_patch: np.ndarray
    hr_frame: np.ndarray
    timestamp: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """JSON-able metadata (the ``meta_json`` row and ``PairStore.meta``)."""
        return {
            "tile_index": self.tile_index, "lr_tile": self.lr_tile,
            "tile_ix": self.ix, "tile_iy": self.iy,
            "stage_xy_um": list(self.stage_xy_um), "hr_stage_xy_um": list(self.hr_stage_xy_um),
            "z_um": self.z_um[1], "lr_z_um": self.z_um[0],
            "focus_score": self.focus_score[1], "lr_focus_score": self.focus_score[0],
            "correlation": self.correlation,
            "transform": {"dx_lr": self.transform[0], "dy_lr": self.transform[1],
                          "rotation_deg": self.transform[2]},
            "crop_origin": list(self.crop_origin),
            "accepted": self.accepted, "reason": self.reason, "tissue": self.tissue,
            "timestamp": self.timestamp, **self.extra,
        }


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (None when it cannot be asked)."""
    try:
        return shutil.disk_usage(path if path.is_dir() else path.parent).free
    except OSError:
        return None


def _mb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 2**20:.2f} MB"


def _is_full(exc: BaseException) -> bool:
    """h5py reports a failed write as RuntimeError or OSError with the errno in the text."""
    no = getattr(exc, "errno", None)
    text = str(exc)
    return (no in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or "No space left" in text
            or "errno = 28" in text or "errno = 27" in text or "File too large" in text
            or "Disk quota" in text)


def _os_error(exc: BaseException, path: Path, what: str) -> StoreError:
    if _is_full(exc):
        kind = ("file size limit reached" if getattr(exc, "errno", None) == errno.EFBIG
                else "disk full")
        return StoreFullError(
            f"{kind} while {what} {path} ({_mb(free_bytes(path))} free): the file keeps "
            "every pair committed before this; free space, then continue with --resume "
            f"[{str(exc).splitlines()[0][:160]}]")
    return StoreError(f"cannot {what} {path}: {exc}")


# ---------------------------------------------------------------------------------------
# writer
# ---------------------------------------------------------------------------------------
class _GuardedIO:
    """The file object under the writer's h5py.File (h5py's ``fileobj`` driver).

    Why: once a write has failed (disk full, file size limit) HDF5 still flushes its
    in-memory state at close, writing a superblock whose end-of-file lies past what reached
    the disk - h5py then refuses the whole file as truncated. After the first failed write
    this object drops every further write, so the disk keeps the file as it was at the last
    successful flush: valid, with every committed pair.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.failed: BaseException | None = None

    def readinto(self, b: Any) -> int:
        return self._raw.readinto(b)

    def read(self, n: int = -1) -> bytes:
        return self._raw.read(n)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._raw.seek(pos, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def write(self, b: Any) -> int:
        if self.failed is not None:
            return len(memoryview(b))
        try:
            return self._raw.write(b)
        except OSError as exc:
            self.failed = exc
            raise

    def truncate(self, size: int | None = None) -> int:
        if self.failed is not None:
            return self._raw.tell() if size is None else size
        try:
            return self._raw.truncate(size)
        except OSError as exc:
            self.failed = exc
            raise

    def flush(self) -> None:
        if self.failed is None:
            try:
                self._raw.flush()
            except OSError as exc:
                self.failed = exc
                raise

    def fsync(self) -> None:
        """Push the OS cache to the device (a commit mark must follow real bytes)."""
        if self.failed is not None:
            raise self.failed
        self.flush()
        try:
            os.fsync(self._raw.fileno())
        except OSError as exc:
            self.failed = exc
            raise

    def close(self) -> None:
        try:
            if self.failed is None:
                self._raw.flush()
        except OSError:
            pass
        finally:
            self._raw.close()


def _open_guarded(path: Path, mode: str) -> h5py.File:
    raw = open(path, "r+b" if mode == "r+" else "w+b")  # noqa: SIM115 - owned by the File
    try:
        import fcntl

        fcntl.flock(raw.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - not POSIX
        pass
    except OSError as exc:
        raw.close()
        raise StoreError(f"{path} is open for writing in another process") from exc
    gio = _GuardedIO(raw)
    try:
        f = h5py.File(gio, mode)
    except BaseException:
        gio.close()
        raise
    _IO[id(f.id)] = gio
    return f


#: h5py File id -> the guarded file object under it (h5py Files take no attributes)
_IO: dict[int, _GuardedIO] = {}


def _close_guarded(f: h5py.File, path: Path) -> None:
    gio = _IO.pop(id(f.id), None)
    try:
        if f.id.valid:
            f.close()
    except Exception as exc:  # noqa: BLE001 - h5py raises RuntimeError/OSError here
        _log.warning("closing %s after an error: %s", path, str(exc).splitlines()[0])
    finally:
        if gio is not None:
            gio.close()


_TILE_SCALARS = {
    "tile_index": ("i4", ()), "tile_ixy": ("i4", (2,)), "stage_xy_um": ("f8", (2,)),
    "z_um": ("f8", ()), "focus_score": ("f8", ()), "tissue_fraction": ("f8", ()),
    "timestamp": ("f8", ()),
}
_PAIR_SCALARS = {
    "tile_index": ("i4", ()), "lr_tile": ("i4", ()), "tile_ixy": ("i4", (2,)),
    "stage_xy_um": ("f8", (2,)), "hr_stage_xy_um": ("f8", (2,)), "z_um": ("f8", (2,)),
    "focus_score": ("f8", (2,)), "transform": ("f8", (3,)), "correlation": ("f8", ()),
    "crop_origin": ("i4", (2,)), "accepted": ("u1", ()), "tissue": ("u1", ()),
    "timestamp": ("f8", ()),
}


class PairWriter:
    """Appends LR tiles and pairs with commit-after-flush durability.

    Open with :meth:`open`; a ``resume`` open truncates uncommitted rows and refuses a file
    made with other objectives or sampling.
    """

    def __init__(self, f: h5py.File, path: Path, header: StoreHeader) -> None:
        self._f = f
        self.path = path
        self.header = header
        self._broken: StoreError | None = None
        self._io = _IO[id(f.id)]
        # why held open: closing an h5py Dataset flushes its chunk cache, and a write that
        # fails there is only "ignored" - the commit mark would then cover missing data.
        # Open datasets write only in the explicit flush below, where failures raise.
        self._ds = {f"{g}/{n}": d for g in ("lr_tiles", "pairs")
                    for n, d in f[g].items() if isinstance(d, h5py.Dataset)}

    # --- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, header: StoreHeader, *, resume: bool = False,
             append: bool = False) -> PairWriter:
        """Create a new store, or reopen an existing one: ``resume`` continues the plan it
        holds (another plan is refused before anything is written); ``append`` starts a new
        plan in it, recorded in ``plan_history_json``, its tiles numbered after the old."""
        path = Path(path)
        try:
            if path.is_dir():
                raise StoreError(f"{path} is a directory; give a file name such as "
                                 f"{path / 'pairs.h5'}")
            if path.exists():
                if not (resume or append):
                    raise StoreError(f"{path} already exists; use resume to continue it or "
                                     "choose another output path")
                with h5py.File(path, "r") as ro:  # read-only: a refused file stays untouched
                    _check_compatible(ro, header, path)
                    if not append:
                        _check_same_plan(ro, header, path)
                f = _open_guarded(path, "r+")
                try:
                    _truncate_to_committed(f)
                    if append:
                        _start_segment(f, header)
                    f.flush()
                except BaseException:
                    _close_guarded(f, path)
                    raise
                return cls(f, path, header)
            if not path.parent.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
            f = _open_guarded(path, "w")
            try:
                _init_file(f, header)
                _start_segment(f, header)
                f.flush()
            except BaseException:
                _close_guarded(f, path)
                raise
            return cls(f, path, header)
        except StoreError:
            raise
        except (OSError, RuntimeError) as exc:
            raise _os_error(exc, path, "open for writing") from exc

    # --- state -------------------------------------------------------------------------
    @property
    def committed_tiles(self) -> int:
        """LR tiles durably stored."""
        return int(self._f.attrs["committed_lr_tiles"])

    @property
    def committed_pairs(self) -> int:
        """Pairs durably stored."""
        return int(self._f.attrs["committed_pairs"])

    @property
    def tile_offset(self) -> int:
        """Added to the current plan's tile indices (non-zero after an ``append``)."""
        return int(self._f.attrs.get("plan_tile_offset", 0))

    def stored_tiles(self) -> dict[int, int]:
        """plan tile index -> row in /lr_tiles, for the committed LR tiles."""
        n = self.committed_tiles
        idx = self._ds["lr_tiles/tile_index"][:n]
        return {int(t): i for i, t in enumerate(idx)}

    def lr_tile(self, row: int) -> tuple[np.ndarray, dict[str, Any]]:
        """A stored raw LR frame and its metadata (used when resuming into the HR phase)."""
        return (self._ds["lr_tiles/frames"][row],
                json.loads(self._ds["lr_tiles/meta_json"][row]))

    def stored_pair_tiles(self) -> set[int]:
        """Plan tile indices that already have a committed pair."""
        n = self.committed_pairs
        return {int(t) for t in self._ds["pairs/tile_index"][:n]}

    def set_attr(self, name: str, value: Any) -> None:
        """Record a file-level fact (e.g. the measured inter-objective offset) durably."""
        def write() -> None:
            self._f.attrs[name] = value
            self._sync()

        self._guard(write, "write attribute to")

    def get_attr(self, name: str, default: Any = None) -> Any:
        """Read a file-level attribute."""
        return self._f.attrs.get(name, default)

    # --- appending ---------------------------------------------------------------------
    def append_tile(self, rec: LRTileRecord) -> int:
        """Store a raw LR frame durably; returns its row."""
        n = self.committed_tiles
        meta = {"tile_index": rec.tile_index, "tile_ix": rec.ix, "tile_iy": rec.iy,
                "stage_xy_um": list(rec.stage_xy_um), "z_um": rec.z_um,
                "focus_score": rec.focus_score, "tissue_fraction": rec.tissue_fraction,
                "timestamp": rec.timestamp, **rec.extra}
        values = {"tile_index": rec.tile_index, "tile_ixy": (rec.ix, rec.iy),
                  "stage_xy_um": rec.stage_xy_um, "z_um": rec.z_um,
                  "focus_score": rec.focus_score, "tissue_fraction": rec.tissue_fraction,
                  "timestamp": rec.timestamp, "frames": rec.frame,
                  "meta_json": json.dumps(meta)}
        self._append("lr_tiles", n, values, "committed_lr_tiles")
        return n

    def append_pair(self, rec: PairRecord) -> int:
        """Store a pair durably (patches, raw HR frame, metadata); returns its id."""
        n = self.committed_pairs
        values = {"tile_index": rec.tile_index, "lr_tile": rec.lr_tile,
                  "tile_ixy": (rec.ix, rec.iy), "stage_xy_um": rec.stage_xy_um,
                  "hr_stage_xy_um": rec.hr_stage_xy_um, "z_um": rec.z_um,
                  "focus_score": rec.focus_score, "transform": rec.transform,
                  "correlation": rec.correlation, "crop_origin": rec.crop_origin,
                  "accepted": int(rec.accepted), "tissue": int(rec.tissue),
                  "timestamp": rec.timestamp, "reason": rec.reason,
                  "lr": rec.lr_patch, "hr": rec.hr_patch, "hr_raw": rec.hr_frame,
                  "meta_json": json.dumps(rec.meta())}
        self._append("pairs", n, values, "committed_pairs")
        return n

    def _append(self, group: str, n: int, values: dict[str, Any], counter: str) -> None:
        self._check_space(values)

        def write() -> None:
            for name, v in values.items():
                ds = self._ds[f"{group}/{name}"]
                if ds.shape[0] < n + 1:
                    ds.resize(n + 1, axis=0)
                ds[n] = v
            self._sync()  # data and grown shapes reach the disk first ...
            self._f.attrs[counter] = n + 1
            self._sync()  # ... then the commit mark

        self._guard(write, "append to")

    def _check_space(self, values: dict[str, Any]) -> None:
        """Refuse a record that cannot fit before writing any of it: HDF5 is then never
        left half way through a write, so the file stays exactly as last committed."""
        if self._broken is not None:
            raise self._broken
        need = sum(np.asarray(v).nbytes for v in values.values()) + RESERVE_BYTES
        free = free_bytes(self.path)
        if free is not None and free < need:
            self._broken = StoreFullError(
                f"disk full: {self.path} needs about {_mb(need)} for the next record but "
                f"only {_mb(free)} is free; the file keeps every pair committed so far - "
                "free space, then continue with --resume")
            raise self._broken

    def _sync(self) -> None:
        """HDF5 flush, then fsync: the bytes are on the disk, not only in the OS cache."""
        self._f.flush()
        self._io.fsync()

    def _guard(self, fn: Any, what: str) -> None:
        if self._broken is not None:
            raise self._broken
        try:
            fn()
        except (OSError, RuntimeError, SystemError) as exc:
            # after a failed write HDF5's in-memory state is not trusted for more commits;
            # the file object saw the real OS error (h5py may wrap it as SystemError)
            cause = self._io.failed or exc
            self._broken = _os_error(cause, self.path, what)
            raise self._broken from exc

    def close(self) -> None:
        """Flush and close; safe to call twice and after a write error (never raises: the
        committed rows are already on disk, a failure here only concerns uncommitted ones)."""
        try:
            _close_guarded(self._f, self.path)
        finally:
            self._ds.clear()

    def __enter__(self) -> PairWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _init_file(f: h5py.File, h: StoreHeader) -> None:
    a = f.attrs
    a["format"] = FORMAT
    a["format_version"] = FORMAT_VERSION
    lr = json.loads(h.lr_profile_json)
    hr = json.loads(h.hr_profile_json)
    a["lr_objective"] = lr["label"]
    a["hr_objective"] = hr["label"]
    a["lr_profile_json"] = h.lr_profile_json
    a["hr_profile_json"] = h.hr_profile_json
    a["lr_pixel_size_um"] = float(lr["pixel_size_um"])
    a["hr_pixel_size_um"] = float(hr["pixel_size_um"])
    a["scale"] = float(h.scale)
    a["lr_frame_shape"] = np.asarray(h.lr_frame_shape, dtype="i4")
    a["hr_frame_shape"] = np.asarray(h.hr_frame_shape, dtype="i4")
    a["patch_lr_px"] = int(h.patch_lr_px)
    a["patch_hr_px"] = int(h.patch_hr_px)
    a["channels"] = int(h.channels)
    a["dtype"] = h.dtype
    a["bit_depth"] = int(h.bit_depth)
    a["plan_json"] = h.plan_json
    a["profiles_json"] = h.profiles_json
    a["camera_json"] = h.camera_json
    a["software_json"] = h.software_json
    a["source"] = h.source
    a["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    a["committed_lr_tiles"] = 0
    a["committed_pairs"] = 0
    dt = np.dtype(h.dtype)
    tail = (h.channels,) if h.channels > 1 or len(h.lr_frame_shape) == 3 else ()
    lr_hw = tuple(h.lr_frame_shape[:2])
    hr_hw = tuple(h.hr_frame_shape[:2])
    p, q = h.patch_lr_px, h.patch_hr_px

    def grow(g: h5py.Group, name: str, shape: tuple[int, ...], dtype: Any,
             compress: bool = False) -> None:
        kw: dict[str, Any] = dict(_COMPRESSION) if compress else {}
        chunks = (1, *shape) if compress else (max(1, 4096 // max(1, int(np.prod(shape)))),
                                               *shape)
        g.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                         chunks=chunks, **kw)

    t = f.create_group("lr_tiles")
    t.attrs["description"] = "raw LR frames, one per planned tile, in acquisition order"
    grow(t, "frames", (*lr_hw, *tail), dt, compress=True)
    for name, (d, shp) in _TILE_SCALARS.items():
        grow(t, name, shp, d)
    grow(t, "meta_json", (), _STR)
    pg = f.create_group("pairs")
    pg.attrs["description"] = ("registered pairs: lr = native LR crop, hr = HR frame resampled "
                               "onto scale x the LR crop grid; hr_raw = raw HR frame")
    grow(pg, "lr", (p, p, *tail), dt, compress=True)
    grow(pg, "hr", (q, q, *tail), dt, compress=True)
    grow(pg, "hr_raw", (*hr_hw, *tail), dt, compress=True)
    for name, (d, shp) in _PAIR_SCALARS.items():
        grow(pg, name, shp, d)
    grow(pg, "reason", (), _STR)
    grow(pg, "meta_json", (), _STR)


def _check_compatible(f: h5py.File, h: StoreHeader, path: Path) -> None:
    a = f.attrs
    if a.get("format") != FORMAT:
        raise StoreMismatchError(f"{path} is not a ThinkScope pair store")
    lr = json.loads(h.lr_profile_json)
    hr = json.loads(h.hr_profile_json)
    checks = [
        ("LR objective", a["lr_objective"], lr["label"]),
        ("HR objective", a["hr_objective"], hr["label"]),
        ("LR pixel size (µm)", float(a["lr_pixel_size_um"]), float(lr["pixel_size_um"])),
        ("HR pixel size (µm)", float(a["hr_pixel_size_um"]), float(hr["pixel_size_um"])),
        ("LR frame shape", tuple(int(v) for v in a["lr_frame_shape"]), tuple(h.lr_frame_shape)),
        ("HR frame shape", tuple(int(v) for v in a["hr_frame_shape"]), tuple(h.hr_frame_shape)),
        ("patch size (LR px)", int(a["patch_lr_px"]), int(h.patch_lr_px)),
        ("dtype", str(a["dtype"]), h.dtype),
    ]
    for what, have, want in checks:
        same = abs(have - want) < 1e-9 if isinstance(have, float) else have == want
        if not same:
            raise StoreMismatchError(
                f"{path} holds pairs with {what} = {have}, but this run has {want}; "
                "pairs from different objectives or sampling are never mixed - "
                "choose another output file")


def _plan_dict(text: str) -> dict[str, Any]:
    """A plan as a comparable dict: validated (so fields added since the file was written
    take their defaults on both sides), without the output path (files may move)."""
    try:
        d = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(d, dict) or not d:
        return {}
    try:
        from .plan import AcquisitionPlan

        d = json.loads(AcquisitionPlan.model_validate(d).model_dump_json())
    except ValueError:
        pass  # not a plan this version can read: compare the raw JSON
    d.pop("output", None)  # the same plan may be continued from a moved file
    return d


def plan_differences(stored_json: str, new_json: str) -> list[str]:
    """Human-readable ``field: stored -> new`` lines where two plans differ (not output)."""
    a, b = _plan_dict(stored_json), _plan_dict(new_json)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {json.dumps(a.get(key))} in the file, "
                       f"{json.dumps(b.get(key))} now")
    return out


def _check_same_plan(f: h5py.File, h: StoreHeader, path: Path) -> None:
    stored = str(f.attrs.get("plan_json", "{}"))
    if not _plan_dict(stored) or not _plan_dict(h.plan_json):
        return
    diff = plan_differences(stored, h.plan_json)
    if diff:
        raise StorePlanError(
            f"{path} holds another acquisition plan; resume continues only the stored plan. "
            f"Differences: {'; '.join(diff)}. To continue it, resume without plan options; "
            "to acquire the new plan, choose another output file (or add its tiles to this "
            "file explicitly with append)")


def _start_segment(f: h5py.File, h: StoreHeader) -> None:
    """Record the plan that starts now; its tile indices continue after the stored ones."""
    a = f.attrs
    history = json.loads(str(a.get("plan_history_json", "[]")))
    if not history and (int(a["committed_lr_tiles"]) or int(a["committed_pairs"])):
        history.append({"plan": json.loads(str(a.get("plan_json", "{}")) or "{}"),
                        "tile_offset": int(a.get("plan_tile_offset", 0)), "kind": "new"})
    offset = 0
    for group in ("lr_tiles", "pairs"):
        counter = "committed_lr_tiles" if group == "lr_tiles" else "committed_pairs"
        n = int(a[counter])
        if n:
            offset = max(offset, int(np.max(f[f"{group}/tile_index"][:n])) + 1)
    history.append({"plan": json.loads(h.plan_json or "{}"), "tile_offset": offset,
                    "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "kind": "append" if history else "new"})
    a["plan_json"] = h.plan_json
    a["plan_tile_offset"] = offset
    a["plan_history_json"] = json.dumps(history)


_REBUILDING = ".rebuilding"


def _truncate_to_committed(f: h5py.File) -> None:
    """Drop rows written after the last commit (the pair in flight at a crash).

    Variable-length string datasets are rebuilt from their committed rows. Why: their
    chunk can hold, past the committed rows, the heap address of a string whose global
    heap never reached the disk (a kill -9 between the two writes). HDF5 frees the old
    string of every row it overwrites, so the next append would fail with "bad heap
    index" although every committed row reads fine.
    """
    for group, counter in (("lr_tiles", "committed_lr_tiles"), ("pairs", "committed_pairs")):
        g = f[group]
        for key in [k for k in g if k.endswith(_REBUILDING)]:  # a rebuild cut short
            base = key[: -len(_REBUILDING)]
            if base in g:
                del g[key]
            else:
                g.move(key, base)
        n = int(f.attrs[counter])
        for name in list(g):
            ds = g[name]
            if not isinstance(ds, h5py.Dataset):
                continue
            if h5py.check_string_dtype(ds.dtype) is not None:
                _rebuild_strings(g, name, n)
            elif ds.shape[0] != n:
                ds.resize(n, axis=0)


def _rebuild_strings(g: h5py.Group, name: str, n: int) -> None:
    """Replace a string dataset by a fresh copy of its first n rows (see above)."""
    old = g[name]
    rows = old[: min(n, old.shape[0])]
    tmp = name + _REBUILDING
    new = g.create_dataset(tmp, shape=(len(rows),), maxshape=old.maxshape, dtype=old.dtype,
                           chunks=old.chunks)
    if len(rows):
        new[:] = rows
    for k, v in old.attrs.items():
        new.attrs[k] = v
    g.file.flush()  # the copy is on disk before the old one goes
    del g[name]
    g.move(tmp, name)


# ---------------------------------------------------------------------------------------
# reader (the API learn/ uses)
# ---------------------------------------------------------------------------------------
class PairStore:
    """Read-only view of a pair store; rows past the committed count are invisible."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder; a pair store is one .h5 file")
        if not self.path.is_file():
            raise StoreError(f"pair store not found: {self.path}")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(f"cannot open pair store {self.path} (not HDF5, or truncated?): "
                             f"{exc}") from exc
        try:
            if self._f.attrs.get("format") != FORMAT:
                raise StoreError(f"{self.path} is not a ThinkScope pair store")
            self._n = int(self._f.attrs["committed_pairs"])
            self._accepted = np.asarray(self._f["pairs/accepted"][: self._n], dtype=bool)
        except (KeyError, OSError, ValueError) as exc:
            self._f.close()
            raise StoreError(f"{self.path}: damaged pair store ({exc})") from exc
        except BaseException:
            self._f.close()
            raise

    def __enter__(self) -> PairStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        if self._f.id.valid:
            self._f.close()

    def __len__(self) -> int:
        return self._n

    @property
    def attrs(self) -> dict[str, Any]:
        """All root attributes (plan, camera, software, ...)."""
        return dict(self._f.attrs)

    @property
    def scale(self) -> float:
        """HR/LR sampling ratio (from the profiles' pixel sizes)."""
        return float(self._f.attrs["scale"])

    @property
    def lr_profile(self) -> Any:
        """ObjectiveProfile of the LR (input) objective."""
        from hardware.profiles import ObjectiveProfile

        return ObjectiveProfile.model_validate_json(self._f.attrs["lr_profile_json"])

    @property
    def hr_profile(self) -> Any:
        """ObjectiveProfile of the HR (target) objective."""
        from hardware.profiles import ObjectiveProfile

        return ObjectiveProfile.model_validate_json(self._f.attrs["hr_profile_json"])

    @property
    def channels(self) -> int:
        """Colour channels per pixel."""
        return int(self._f.attrs["channels"])

    @property
    def bit_depth(self) -> int:
        """Camera bit depth of the stored frames."""
        return int(self._f.attrs["bit_depth"])

    @property
    def plan_json(self) -> str:
        """The acquisition plan that produced the file."""
        return str(self._f.attrs["plan_json"])

    def pair_ids(self, accepted_only: bool = True) -> list[int]:
        """Ids of committed pairs (only accepted ones by default)."""
        if accepted_only:
            return [int(i) for i in np.flatnonzero(self._accepted)]
        return list(range(self._n))

    def _check(self, i: int) -> int:
        if not 0 <= i < self._n:
            raise IndexError(f"pair {i} not in store (committed pairs: {self._n})")
        return i

    def lr(self, i: int) -> np.ndarray:
        """Registered LR patch (h, w, C), native LR sampling, camera dtype."""
        return self._f["pairs/lr"][self._check(i)]

    def hr(self, i: int) -> np.ndarray:
        """HR patch (round(h*scale), round(w*scale), C) on scale x the LR patch grid."""
        return self._f["pairs/hr"][self._check(i)]

    def hr_raw(self, i: int) -> np.ndarray:
        """The raw HR camera frame of pair i."""
        return self._f["pairs/hr_raw"][self._check(i)]

    def lr_raw(self, i: int) -> np.ndarray:
        """The raw LR camera frame pair i was cut from."""
        row = int(self._f["pairs/lr_tile"][self._check(i)])
        return self._f["lr_tiles/frames"][row]

    def meta(self, i: int) -> dict[str, Any]:
        """Per-pair metadata (tile_ix/iy, stage_xy_um, z_um, focus_score, correlation,
        transform, accepted, reason, tissue, timestamps, ...)."""
        return json.loads(self._f["pairs/meta_json"][self._check(i)])

    def fingerprint(self) -> str:
        """sha256 over the accepted pairs' pixels and metadata: names the training data."""
        h = hashlib.sha256()
        a = self._f.attrs
        h.update(f"{a['lr_objective']}|{a['hr_objective']}|{self.scale!r}".encode())
        for i in self.pair_ids(True):
            h.update(np.ascontiguousarray(self.lr(i)).tobytes())
            h.update(np.ascontiguousarray(self.hr(i)).tobytes())
            m = self.meta(i)
            m.pop("timestamp", None)
            h.update(json.dumps(m, sort_keys=True).encode())
        return h.hexdigest()
