"""The HDF5 pair store: layout, read API, refusal of mixed files, commit/truncate, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from thinkscope_gui.pairs.store import (
    LRTileRecord,
    PairRecord,
    PairStore,
    PairWriter,
    StoreError,
    StoreHeader,
    StoreMismatchError,
)

ROOT = Path(__file__).resolve().parents[1]


def _profile(label: str, px: float, mag: float, na: float, imm: str) -> str:
    return json.dumps({"label": label, "magnification": mag, "na": na, "immersion": imm,
                       "pixel_size_um": px, "offset_xy_um": [0.0, 0.0], "parfocal_z_um": 0.0,
                       "rotation_deg": 0.0, "retired": False})


def header(hr_px: float = 0.065, shape: int = 64, patch: int = 16) -> StoreHeader:
    lr_px = 0.1625
    return StoreHeader(
        lr_profile_json=_profile("40x", lr_px, 40, 0.95, "dry"),
        hr_profile_json=_profile("100x", hr_px, 100, 1.4, "oil"),
        scale=lr_px / hr_px, lr_frame_shape=(shape, shape, 3), hr_frame_shape=(shape, shape, 3),
        patch_lr_px=patch, dtype="uint8", bit_depth=8, plan_json='{"grid": [2, 2]}')


def tile(i: int, shape: int = 64) -> LRTileRecord:
    rng = np.random.default_rng(i)
    return LRTileRecord(tile_index=i, ix=i % 2, iy=i // 2, stage_xy_um=(10.0 * i, -5.0 * i),
                        z_um=1.0 + i, focus_score=3.0, tissue_fraction=0.5,
                        frame=rng.integers(0, 255, (shape, shape, 3), dtype=np.uint8))


def pair(i: int, h: StoreHeader, accepted: bool = True) -> PairRecord:
    rng = np.random.default_rng(100 + i)
    p, q = h.patch_lr_px, h.patch_hr_px
    s = h.lr_frame_shape[0]
    return PairRecord(
        tile_index=i, lr_tile=i, ix=i % 2, iy=i // 2, stage_xy_um=(10.0 * i, -5.0 * i),
        hr_stage_xy_um=(10.0 * i + 1, -5.0 * i - 1), z_um=(1.0, 2.0), focus_score=(3.0, 4.0),
        transform=(0.5, -0.25, 0.1), correlation=0.95, crop_origin=(3, 4), accepted=accepted,
        reason="" if accepted else "low correlation", tissue=True,
        lr_patch=rng.integers(0, 255, (p, p, 3), dtype=np.uint8),
        hr_patch=rng.integers(0, 255, (q, q, 3), dtype=np.uint8),
        hr_frame=rng.integers(0, 255, (s, s, 3), dtype=np.uint8))


def test_roundtrip_read_api(tmp_path: Path) -> None:
    h = header()
    path = tmp_path / "p.h5"
    with PairWriter.open(path, h) as w:
        for i in range(3):
            w.append_tile(tile(i))
            w.append_pair(pair(i, h, accepted=i != 1))
    with PairStore(path) as s:
        assert s.scale == pytest.approx(2.5)
        assert s.channels == 3 and s.bit_depth == 8
        assert s.lr_profile.label == "40x" and s.hr_profile.label == "100x"
        assert s.pair_ids() == [0, 2]
        assert s.pair_ids(accepted_only=False) == [0, 1, 2]
        assert s.lr(2).shape == (16, 16, 3) and s.hr(2).shape == (40, 40, 3)
        assert s.lr(2).dtype == np.uint8
        np.testing.assert_array_equal(s.lr(2), pair(2, h).lr_patch)
        np.testing.assert_array_equal(s.lr_raw(2), tile(2).frame)
        m = s.meta(1)
        assert m["accepted"] is False and m["reason"] == "low correlation"
        assert m["tile_ix"] == 1 and m["tile_iy"] == 0
        assert m["transform"]["dx_lr"] == 0.5 and m["stage_xy_um"] == [10.0, -5.0]
        fp = s.fingerprint()
        assert len(fp) == 64
        with pytest.raises(IndexError):
            s.lr(3)
    # the file is plain HDF5 that any reader understands
    with h5py.File(path, "r") as f:
        assert f["pairs/lr"].compression == "gzip"
        assert f["pairs/hr"].shape == (3, 40, 40, 3)
        assert f.attrs["committed_pairs"] == 3
    # fingerprint follows the accepted data
    with PairWriter.open(path, h, resume=True) as w:
        w.append_pair(pair(5, h, accepted=True))
    with PairStore(path) as s:
        assert s.fingerprint() != fp


def test_refuses_other_objective_pair_and_existing_without_resume(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    with PairWriter.open(path, header()) as w:
        w.append_tile(tile(0))
    with pytest.raises(StoreError, match="already exists"):
        PairWriter.open(path, header())
    with pytest.raises(StoreMismatchError, match="HR pixel size"):
        PairWriter.open(path, header(hr_px=0.08125), resume=True)
    with pytest.raises(StoreMismatchError, match="patch size"):
        PairWriter.open(path, header(patch=20), resume=True)
    with PairWriter.open(path, header(), resume=True) as w:  # the right header resumes
        assert w.committed_tiles == 1


def test_uncommitted_rows_are_invisible_and_truncated(tmp_path: Path) -> None:
    h = header()
    path = tmp_path / "p.h5"
    with PairWriter.open(path, h) as w:
        w.append_tile(tile(0))
        w.append_pair(pair(0, h))
    # simulate a crash after the data went in but before the commit mark
    with h5py.File(path, "r+") as f:
        for ds in f["pairs"].values():
            ds.resize(2, axis=0)
    with PairStore(path) as s:
        assert s.pair_ids(False) == [0]
    with PairWriter.open(path, h, resume=True) as w:
        assert w.committed_pairs == 1
    with h5py.File(path, "r") as f:
        assert f["pairs/lr"].shape[0] == 1


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        PairWriter.open(blocker / "sub" / "p.h5", header())


_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_pairs_store import header, tile, pair
    from thinkscope_gui.pairs.store import PairWriter
    h = header(shape=128, patch=32)
    w = PairWriter.open({path!r}, h, resume=True)
    done = w.stored_pair_tiles()
    for i in range(40):
        if i in done:
            continue
        w.append_tile(tile(i, 128))
        w.append_pair(pair(i, h))
        print(i, flush=True)
    w.close()
""")


def test_sigkill_at_random_moments_never_corrupts(tmp_path: Path) -> None:
    """kill -9 a writer at random times; the file always opens, no duplicates, none lost."""
    path = tmp_path / "k.h5"
    script = tmp_path / "w.py"
    script.write_text(_WRITER.format(root=str(ROOT), tests=str(ROOT / "tests"), path=str(path)))
    rng = np.random.default_rng(1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one pair written in this round
        time.sleep(float(rng.uniform(0.0, 0.05)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with PairStore(path) as s:  # opens after every kill
            tiles = [s.meta(i)["tile_index"] for i in s.pair_ids(False)]
            assert tiles == sorted(set(tiles))
    subprocess.run([sys.executable, str(script)], check=True, env=env, stdout=subprocess.DEVNULL)
    with PairStore(path) as s:
        tiles = [s.meta(i)["tile_index"] for i in s.pair_ids(False)]
        assert tiles == list(range(40))
        for i in s.pair_ids(False):
            t = s.meta(i)["tile_index"]
            np.testing.assert_array_equal(s.lr(i), pair(t, header(shape=128, patch=32)).lr_patch)


def test_reader_names_missing_corrupt_and_damaged_stores(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        PairStore(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(StoreError, match="cannot open pair store"):
        PairStore(junk)
    from thinkscope_gui.pairs.store import FORMAT

    damaged = tmp_path / "damaged.h5"
    with h5py.File(damaged, "w") as f:
        f.attrs["format"] = FORMAT  # right format tag, but no committed count or datasets
    with pytest.raises(StoreError, match="damaged"):
        PairStore(damaged)
    with h5py.File(damaged, "a"):  # the failed reader closed its handle
        pass


def test_resume_after_a_kill_between_string_chunk_and_heap(tmp_path: Path) -> None:
    """kill -9 can leave, past the committed rows, a string row whose global heap never
    reached the disk; the resumed writer must append after it (it failed with "bad heap
    index": HDF5 frees the old string of a row it overwrites)."""
    path = tmp_path / "s.h5"
    h = header(shape=128, patch=32)
    w = PairWriter.open(path, h)
    for i in range(2):
        w.append_tile(tile(i, 128))
        w.append_pair(pair(i, h))
    w.close()
    with h5py.File(path, "r+") as f:  # the state such a kill leaves on disk
        ds = f["pairs/meta_json"]
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = "the pair in flight"
        f.flush()
        raw = bytearray(ds.id.read_direct_chunk((0,))[1])
        ds.resize(n, axis=0)  # the extent of the last commit
        # row n (4-byte length, 8-byte heap collection address, 4-byte index) names an
        # object its collection never received
        raw[16 * n + 12:16 * n + 16] = (9999).to_bytes(4, "little")
        ds.id.write_direct_chunk((0,), bytes(raw))
    w = PairWriter.open(path, h, resume=True)
    assert w.stored_pair_tiles() == {0, 1}
    w.append_tile(tile(2, 128))
    w.append_pair(pair(2, h))
    w.close()
    with PairStore(path) as s:
        assert [s.meta(i)["tile_index"] for i in s.pair_ids(False)] == [0, 1, 2]
        np.testing.assert_array_equal(s.lr(2), pair(2, h).lr_patch)
