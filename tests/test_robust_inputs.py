"""A new user's unusual inputs on the headless surface: real files written with PIL and
tifffile (JPEG with EXIF orientation, CMYK, palette, OME, signed and float TIFFs, TIFF
headers claiming huge sizes, 16-bit colour PNG), hostile paths (output == input, a
read-only tmpfs, dangling links, folders where files belong) and the Python API.

Each case asserts what comes out (pixels, shape, dtype, names) or the one-line refusal
naming the file, and that no input changed and no partial file was left. The read-only
cases mount a real read-only tmpfs (root only; skipped with the reason otherwise)."""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.learn_helpers import make_model_file
from thinkscope_gui.cli import enhance as enhance_cli
from thinkscope_gui.cli import snap as snap_cli
from thinkscope_gui.learn.imageio import ImageFileError, enhance_file, read_input
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.learn.tiled import PngStream

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("m") / "m.safetensors",
                           params={"feats": 8, "layers": 1})


@pytest.fixture(scope="module")
def enh(model_path) -> Enhancer:
    return Enhancer.load(model_path, device="cpu")


@pytest.fixture()
def ro_dir(tmp_path: Path):
    """A real read-only file system (a 1 MB tmpfs mounted ro): root ignores mode bits."""
    mnt = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def _enhance_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    enhance_cli.add_parser(p.add_subparsers())
    return p.parse_args(["enhance", *argv])


# --- formats -------------------------------------------------------------------------


def test_exif_rotated_jpeg_is_upright_and_written_as_png(tmp_path, enh) -> None:
    src = tmp_path / "phone.jpg"
    im = Image.fromarray(_rgb(12, 20))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° CW to display": a portrait phone photo
    im.save(src, exif=exif)
    pixels, alpha = read_input(src)
    assert pixels.shape == (20, 12, 3) and alpha is None  # displayed orientation
    out = enhance_file(enh, src, tmp_path / "o.jpg")
    assert out == tmp_path / "o.png" and not (tmp_path / "o.jpg").exists()
    with Image.open(out) as o:
        assert o.format == "PNG" and o.mode == "RGB"
        assert o.size == (enh.output_shape(20, 12)[1], enh.output_shape(20, 12)[0])


def test_cmyk_jpeg_and_palette_png_come_in_as_rgb(tmp_path) -> None:
    rgb = _rgb(16, 16)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    for name in ("c.jpg", "p.png"):
        a, alpha = read_input(tmp_path / name)
        assert a.shape == (16, 16, 3) and a.dtype == np.uint8 and alpha is None
    a, _ = read_input(tmp_path / "c.jpg")
    assert np.abs(a.astype(int) - rgb).mean() < 20  # the colours, not their inverse


def test_grey_and_grey_alpha_stay_grey(tmp_path, enh) -> None:
    g = _rgb(14, 18)[..., 0]
    Image.fromarray(g).save(tmp_path / "g.png")
    Image.fromarray(np.dstack([g, np.full_like(g, 200)]), "LA").save(tmp_path / "ga.png")
    for name, mode in (("g.png", "L"), ("ga.png", "LA")):
        out = enhance_file(enh, tmp_path / name, tmp_path / f"o_{name}")
        with Image.open(out) as o:
            assert o.mode == mode and o.size == enh.output_shape(14, 18)[::-1]
            if mode == "LA":
                assert set(np.asarray(o)[..., 1].ravel()) == {200}


def test_ome_single_plane_is_read_and_an_ome_stack_refused(tmp_path) -> None:
    plane = _rgb(16, 16)[..., 0]
    tifffile.imwrite(tmp_path / "one.ome.tif", plane[None, None], ome=True,
                     metadata={"axes": "TCYX"})
    a, _ = read_input(tmp_path / "one.ome.tif")
    assert a.shape == (16, 16) and np.array_equal(a, plane)
    tifffile.imwrite(tmp_path / "z.ome.tif", np.stack([plane] * 3)[:, None], ome=True,
                     metadata={"axes": "ZCYX"})
    with pytest.raises(ImageFileError, match=r"z\.ome\.tif: multi-page"):
        read_input(tmp_path / "z.ome.tif")


def test_other_integer_bool_and_half_tiffs_come_in_and_negatives_are_refused(tmp_path) -> None:
    counts = np.arange(256, dtype=np.int16).reshape(16, 16) * 100
    tifffile.imwrite(tmp_path / "s.tif", counts)
    a, _ = read_input(tmp_path / "s.tif")
    assert a.dtype == np.uint16 and np.array_equal(a, counts)
    for dtype in (np.uint32, np.int32):
        tifffile.imwrite(tmp_path / "w.tif", counts.astype(dtype))
        a, _ = read_input(tmp_path / "w.tif")
        assert a.dtype == np.uint16 and np.array_equal(a, counts)
    tifffile.imwrite(tmp_path / "b.tif", counts > 9000)
    a, _ = read_input(tmp_path / "b.tif")
    assert a.dtype == np.uint8 and np.array_equal(a, np.where(counts > 9000, 255, 0))
    tifffile.imwrite(tmp_path / "h.tif", (counts / 30000).astype(np.float16))
    a, _ = read_input(tmp_path / "h.tif")
    assert a.dtype == np.float32 and np.allclose(a, counts / 30000, atol=1e-3)
    tifffile.imwrite(tmp_path / "neg.tif", counts - 50)
    with pytest.raises(ImageFileError, match=r"neg\.tif: unsupported sample type int16"):
        read_input(tmp_path / "neg.tif")


@pytest.mark.parametrize("values,words", [
    ((np.nan, 0.5), "1 NaN/infinite pixel"),
    ((np.inf, 0.5), "1 NaN/infinite pixel"),
    ((0.0, 4095.0), "float pixels span 0..4095"),
    ((-0.5, 0.5), "float pixels span -0.5..0.5"),
])
def test_float_tiffs_outside_the_unit_range_are_refused(tmp_path, values, words) -> None:
    a = np.full((16, 16), 0.25, np.float32)
    a[0, 0], a[5, 5] = values
    tifffile.imwrite(tmp_path / "f.tif", a)
    with pytest.raises(ImageFileError, match=r"f\.tif: ") as e:
        read_input(tmp_path / "f.tif")
    assert words in str(e.value)


def test_unit_float_tiff_comes_out_float(tmp_path, enh) -> None:
    a = np.random.default_rng(1).random((16, 16), np.float32)
    tifffile.imwrite(tmp_path / "f.tif", a)
    out = enhance_file(enh, tmp_path / "f.tif", tmp_path / "o.png")
    b = tifffile.imread(out)
    assert out.suffix == ".tif" and b.dtype == np.float32 and np.isfinite(b).all()
    assert b.shape == enh.output_shape(16, 16)


def _bomb_tiff(path: Path, side: int) -> None:
    """A valid 8x8 TIFF whose header then claims side x side pixels."""
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tf:
        tags = tf.pages[0].tags
        for code in (256, 257):
            t = tags[code]
            fmt = "<H" if t.dtype == 3 else "<I"
            data[t.valueoffset:t.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, side)
    path.write_bytes(bytes(data))


def test_tiff_claiming_a_huge_size_is_refused_before_any_allocation(tmp_path) -> None:
    p = tmp_path / "bomb.tif"
    _bomb_tiff(p, 60000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageFileError, match=r"bomb\.tif: 60000x60000 px is too large"):
            read_input(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6


def test_16_bit_colour_png_is_refused_not_cut_to_8_bits(tmp_path) -> None:
    p = tmp_path / "rgb16.png"
    w = PngStream(p, 8, 8, 3, np.dtype(np.uint16))
    w.write(np.full((8, 8, 3), 40000, np.uint16))
    w.close()
    with pytest.raises(ImageFileError, match=r"rgb16\.png: 16-bit colour PNG"):
        read_input(p)


def test_empty_file_folder_and_dangling_link_say_what_they_are(tmp_path) -> None:
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "link.tif").symlink_to(tmp_path / "gone.tif")
    for name, words in (("zero.png", "empty file (0 bytes)"),
                        ("dir.png", "is a folder, not an image file"),
                        ("link.tif", "dangling symbolic link")):
        with pytest.raises(ImageFileError) as e:
            read_input(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and words in str(e.value)


# --- outputs -------------------------------------------------------------------------


def test_output_equal_to_the_input_is_refused_and_the_input_kept(tmp_path, enh) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(_rgb(12, 12)).save(src)
    before = _md5(src)
    (tmp_path / "alias.png").symlink_to(src)
    for dst in (src, tmp_path / "alias.png", tmp_path / "sub" / ".." / "in.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ImageFileError, match="is the input itself"):
            enhance_file(enh, src, dst)
    assert _md5(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.png", "in.png", "sub"]


def test_read_only_output_is_one_line_and_exit_2(tmp_path, model_path, ro_dir) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(_rgb(12, 12)).save(src)
    env = dict(os.environ, PYTHONPATH=str(ROOT), THINKSCOPE_HOME=str(tmp_path / "home"))
    ro = "Read-only file system"
    for dst, words in ((ro_dir / "o.png", f"cannot write the output: {ro}"),
                       (ro_dir / "sub" / "o.png", f"cannot create its folder: {ro}")):
        r = subprocess.run([sys.executable, str(ROOT / "main.py"), "enhance", str(src), str(dst),
                            "--model", str(model_path), "--device", "cpu", "--quiet"],
                           capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
        text = (r.stdout + r.stderr).strip()
        assert r.returncode == 2 and "Traceback" not in text, text
        assert text.splitlines() == [f"error: {dst}: {words}"], text
    assert list(ro_dir.iterdir()) == []


def test_folder_batch_summary_names_and_collisions(tmp_path, model_path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_rgb(12, 12, 1)).save(src / "a.png")
    Image.fromarray(_rgb(12, 12, 2)).save(src / "a.jpg")  # would also be a.png
    Image.fromarray(_rgb(12, 12, 3)).save(src / "b.JPEG")
    Image.fromarray(_rgb(12, 12, 4)).save(src / ".hidden.png")  # e.g. macOS ._ files
    (src / "notes.txt").write_text("x")
    (src / "zero.tif").write_bytes(b"")
    (src / "gone.png").symlink_to(src / "nowhere.png")
    before = {p.name: _md5(p) for p in src.iterdir() if p.is_file()}
    rc = enhance_cli.run(_enhance_args(str(src), str(tmp_path / "out"), "--model",
                                       str(model_path), "--quiet", "--device", "cpu"))
    out = capsys.readouterr().out
    assert rc == 1, out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg.png", "a.png",
                                                                     "b.png"]
    assert "enhanced 3 of 5 images" in out and "1 non-image file(s) ignored" in out
    assert "skipped 2 bad image(s)" in out and "zero.tif: empty file" in out
    assert "gone.png: dangling symbolic link" in out and "Traceback" not in out
    with Image.open(tmp_path / "out" / "a.png") as a, Image.open(tmp_path / "out" /
                                                                 "a.jpg.png") as j:
        assert not np.array_equal(np.asarray(a), np.asarray(j))  # two images, none lost
    assert {p.name: _md5(p) for p in src.iterdir() if p.is_file()} == before


def test_a_renamed_output_never_overwrites_another_image_of_the_batch(tmp_path, model_path,
                                                                      capsys) -> None:
    # a.png that is really a 16-bit colour TIFF comes out as TIFF (no 16-bit colour PNG is
    # written), which would be a.tif: the name of a.tif's own output
    src = tmp_path / "in"
    src.mkdir()
    rgb16 = np.random.default_rng(5).integers(0, 65536, (12, 12, 3), dtype=np.uint16)
    tifffile.imwrite(src / "a.png", rgb16)
    tifffile.imwrite(src / "a.tif", rgb16[::-1].copy())
    rc = enhance_cli.run(_enhance_args(str(src), str(tmp_path / "out"), "--model",
                                       str(model_path), "--quiet", "--device", "cpu"))
    assert rc == 0, capsys.readouterr().out
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a.png.tif", "a.tif"]
    assert not np.array_equal(tifffile.imread(out / "a.png.tif"), tifffile.imread(out / "a.tif"))


def test_folder_into_itself_or_without_images_is_exit_2(tmp_path, model_path, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "readme.txt").write_text("x")
    common = ("--model", str(model_path), "--quiet", "--device", "cpu")
    assert enhance_cli.run(_enhance_args(str(src), str(tmp_path / "o"), *common)) == 2
    assert "no PNG/TIFF/JPEG images in" in capsys.readouterr().out
    Image.fromarray(_rgb(12, 12)).save(src / "a.png")
    before = _md5(src / "a.png")
    assert enhance_cli.run(_enhance_args(str(src), str(src), *common)) == 2
    assert "is the input folder" in capsys.readouterr().out
    assert _md5(src / "a.png") == before and sorted(os.listdir(src)) == ["a.png", "readme.txt"]


# --- snap ----------------------------------------------------------------------------


def _snap_args(out: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    snap_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["snap", str(out), "--sensor", "16", "16"])
    args.source = "sim"
    return args


def test_snap_refuses_bad_outputs_in_one_line(tmp_path, monkeypatch, capsys, ro_dir) -> None:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))
    for out, words in ((tmp_path / "x.png", "give a .tif or .tiff name"),
                       (tmp_path, "give a .tif or .tiff name"),
                       (ro_dir / "x.tif", f"cannot write {ro_dir / 'x.tif'}: Read-only"),
                       (ro_dir / "d" / "x.tif", "cannot create its folder")):
        assert snap_cli.run(_snap_args(out)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and str(out) in err[0], err
    assert not (tmp_path / "x.png").exists() and list(ro_dir.iterdir()) == []


def test_acquire_into_a_read_only_file_system_is_refused_before_the_run(tmp_path,
                                                                         ro_dir) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYMM_SIGNALS_BACKEND="psygnal",
               THINKSCOPE_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen")
    out = ro_dir / "run" / "pairs.h5"
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "acquire", "--sensor", "128",
                        "--quiet", "--grid", "1x1", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"cannot write {out}" in r.stderr and "read-only" in r.stderr
    assert "finished" not in r.stdout and "Traceback" not in r.stderr  # nothing ran
    assert list(ro_dir.iterdir()) == []


# --- Python API ----------------------------------------------------------------------


@pytest.mark.parametrize("frame,words", [
    (np.zeros((0, 5), np.uint8), "empty frame"),
    (np.full((8, 8), np.nan, np.float32), "NaN/infinite"),
    (np.zeros((8, 8, 4), np.uint8), "an alpha channel?"),
    (np.zeros((3, 16, 16), np.uint8), "looks channels-first"),
])
def test_enhancer_names_what_is_wrong_with_a_frame(enh, frame, words) -> None:
    with pytest.raises(ValueError, match=words):
        enh.enhance(frame)


def test_files_are_read_by_content_not_by_their_suffix(tmp_path) -> None:
    rgb = _rgb(10, 14)
    Image.fromarray(rgb).save(tmp_path / "png_named.tif", format="PNG")
    tifffile.imwrite(tmp_path / "tiff_named.png", rgb, photometric="rgb")
    for name in ("png_named.tif", "tiff_named.png"):
        a, _ = read_input(tmp_path / name)
        assert np.array_equal(a, rgb), name


def test_a_16_bit_tiff_that_states_its_bit_depth_is_scaled_by_it(tmp_path, enh) -> None:
    from thinkscope_gui.learn.imageio import file_bit_depth
    from thinkscope_gui.tiff import write_tiff

    px = enh.meta.lr_pixel_size_um
    counts = np.random.default_rng(3).integers(0, 4096, (16, 16, 3)).astype(np.uint16)
    write_tiff(tmp_path / "said12.tif", counts, px, {"bit_depth": 12})
    write_tiff(tmp_path / "plain.tif", counts, px)
    assert file_bit_depth(tmp_path / "said12.tif", counts) == 12
    assert file_bit_depth(tmp_path / "plain.tif", counts) is None
    a = tifffile.imread(enhance_file(enh, tmp_path / "said12.tif", tmp_path / "a.tif"))
    b = tifffile.imread(enhance_file(enh, tmp_path / "plain.tif", tmp_path / "b.tif",
                                     bit_depth=12))
    c = tifffile.imread(enhance_file(enh, tmp_path / "plain.tif", tmp_path / "c.tif"))
    assert a.dtype == np.uint16 and np.array_equal(a, b) and a.max() <= 4095
    assert not np.array_equal(a, c)
    # a claim its pixels contradict is ignored rather than clipping real data
    counts[0, 0, 0] = 40000
    write_tiff(tmp_path / "lies.tif", counts, px, {"bit_depth": 12})
    assert file_bit_depth(tmp_path / "lies.tif", counts) is None
