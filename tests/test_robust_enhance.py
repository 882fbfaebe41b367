"""`enhance` and bad images: one-line messages, batches that skip and name bad files,
alpha passed through, multi-page TIFFs refused, large images streamed band by band."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.learn_helpers import make_model_file, tiny_model_at_scale
from thinkscope_gui.cli import enhance as enhance_cli
from thinkscope_gui.learn.imageio import ImageFileError, enhance_file, read_input
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.learn.modelfile import save_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("m") / "m.safetensors",
                           params={"feats": 8, "layers": 1})


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    enhance_cli.add_parser(p.add_subparsers())
    return p.parse_args(["enhance", *argv])


def _rgb(rng: np.random.Generator, h: int, w: int, dtype=np.uint8) -> np.ndarray:
    hi = 255 if dtype == np.uint8 else 65535
    return rng.integers(0, hi, (h, w, 3), dtype=dtype)


def test_folder_skips_and_names_bad_files_and_writes_every_good_one(tmp_path, model_path,
                                                                    capsys) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_rgb(rng, 20, 24)).save(src / "a_good.png")
    (src / "b_text.png").write_text("this is not an image\n")
    tifffile.imwrite(src / "c_good16.tif", _rgb(rng, 16, 16, np.uint16), photometric="rgb")
    tifffile.imwrite(src / "d_stack.tif", rng.integers(0, 255, (3, 16, 16), np.uint8),
                     photometric="minisblack")
    good = src / "e_good.png"
    Image.fromarray(_rgb(rng, 18, 18)).save(good)
    (src / "f_trunc.png").write_bytes(good.read_bytes()[:60])
    rc = enhance_cli.run(_args(str(src), str(tmp_path / "out"), "--model", str(model_path),
                               "--quiet"))
    out = capsys.readouterr().out
    assert rc == 1
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_good.png", "c_good16.tif", "e_good.png"]
    for name in ("b_text.png", "d_stack.tif", "f_trunc.png"):
        assert name in out
    assert "multi-page TIFF" in out and "skipped 3 bad" in out and "Traceback" not in out


@pytest.mark.parametrize("content", [b"hello", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_single_unreadable_file_is_one_line(tmp_path, model_path, capsys, content) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(content)
    rc = enhance_cli.run(_args(str(bad), str(tmp_path / "o.png"), "--model", str(model_path)))
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 2 and len(out) == 1 and out[0].startswith("error:") and "x.png" in out[0]
    assert not (tmp_path / "o.png").exists()


def test_multipage_tiff_is_refused_clearly(tmp_path) -> None:
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, np.zeros((4, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(ImageFileError, match="multi-page TIFF .4 pages."):
        read_input(p)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_alpha_passes_through(tmp_path, model_path, suffix) -> None:
    rng = np.random.default_rng(3)
    rgb = _rgb(rng, 20, 22)
    mask = np.where(rng.random((20, 22)) > 0.5, 255, 0).astype(np.uint8)
    src = tmp_path / f"rgba{suffix}"
    rgba = np.dstack([rgb, mask])
    if suffix == ".png":
        Image.fromarray(rgba, "RGBA").save(src)
    else:
        tifffile.imwrite(src, rgba, photometric="rgb", extrasamples=["unassalpha"])
    enh = Enhancer.load(model_path, device="cpu")
    out = enhance_file(enh, src, tmp_path / f"o{suffix}")
    got = np.asarray(Image.open(out)) if suffix == ".png" else tifffile.imread(out)
    assert got.shape == (50, 55, 4)
    assert set(np.unique(got[..., 3])) <= {0, 255}  # mask values kept, none invented
    ys = np.minimum(((np.arange(50) + 0.5) / 2.5).astype(int), 19)
    xs = np.minimum(((np.arange(55) + 0.5) / 2.5).astype(int), 21)
    assert np.array_equal(got[..., 3], mask[ys[:, None], xs[None, :]])
    assert np.abs(got[..., :3].astype(int) - enh.enhance(rgb).astype(int)).max() <= 1


def _model_at_scale(path: Path, scale: float) -> Path:
    model, meta = tiny_model_at_scale(scale, seed=1)
    return save_model(model, meta, path)


@pytest.mark.parametrize("scale", [2.5, 1.5, 2.0])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_banded_stream_matches_the_whole_image(tmp_path, scale, suffix) -> None:
    enh = Enhancer.load(_model_at_scale(tmp_path / "m.safetensors", scale), device="cpu")
    rng = np.random.default_rng(5)
    img = _rgb(rng, 71, 53)
    src = tmp_path / "in.png"
    Image.fromarray(img).save(src)
    calls = []
    out = enhance_file(enh, src, tmp_path / f"o{suffix}", band=8,
                       progress=lambda d, t: calls.append((d, t)))
    got = np.asarray(Image.open(out)) if suffix == ".png" else tifffile.imread(out)
    whole = enh.enhance(img)
    assert got.shape == whole.shape == (round(71 * scale), round(53 * scale), 3)
    assert np.abs(got.astype(int) - whole.astype(int)).max() <= 1
    assert calls[-1][0] == calls[-1][1] and len(calls) == calls[-1][1] > 4


def test_16bit_grey_png_streams(tmp_path, model_path) -> None:
    rng = np.random.default_rng(6)
    img = rng.integers(0, 65535, (30, 26), dtype=np.uint16)
    src = tmp_path / "g.png"
    Image.fromarray(img).save(src)
    enh = Enhancer.load(model_path, device="cpu")
    out = enhance_file(enh, src, tmp_path / "o.png", band=4)
    got = np.asarray(Image.open(out))
    assert got.shape == (75, 65) and got.dtype in (np.uint16, np.int32)
    assert np.abs(got.astype(int) - enh.enhance(img).astype(int)).max() <= 1


def test_sigterm_stops_a_batch_cleanly(tmp_path, model_path) -> None:
    rng = np.random.default_rng(7)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        Image.fromarray(_rgb(rng, 400, 400)).save(src / f"im{i:02d}.png")
    env = dict(os.environ, PYTHONPATH=str(ROOT), THINKSCOPE_HOME=str(tmp_path / "home"))
    out = tmp_path / "out"
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "enhance", str(src),
                                 str(out), "--model", str(model_path), "--quiet"], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        t0 = time.monotonic()
        while not (out.exists() and any(out.glob("im*.png"))) and time.monotonic() - t0 < 60:
            time.sleep(0.02)
        proc.send_signal(sig)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("enhance hung after a signal")
        assert proc.returncode in (128 + sig, 0), (proc.returncode, stdout, stderr[-2000:])
        assert "Traceback" not in stderr
        if proc.returncode:
            assert stdout.startswith("cancelled:")
        assert not list(out.glob(".*partial*"))  # no half image left behind
        for p in out.iterdir():
            assert np.asarray(Image.open(p)).shape == (1000, 1000, 3)
        for p in out.iterdir():
            p.unlink()
