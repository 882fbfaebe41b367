"""`main.py train` and `main.py enhance` as a user runs them (small data, tiny models)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from tests.learn_helpers import make_folder_pairs, make_model_file
from thinkscope_gui.cli import enhance as enhance_cli
from thinkscope_gui.cli import train as train_cli
from thinkscope_gui.learn.imageio import read_pixel_size_um
from thinkscope_gui.learn.modelfile import read_meta

torch.set_num_threads(1)


def _parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_train_cli_records_its_command(tmp_path, monkeypatch, capsys) -> None:
    pairs = make_folder_pairs(tmp_path / "pairs", n=4)
    out = tmp_path / "m.safetensors"
    argv = ["train", "--pairs-dir", str(pairs), "--epochs", "1", "--steps", "2",
            "--batch", "2", "--patch", "16", "--threads", "1", "--out", str(out)]
    monkeypatch.setattr("sys.argv", ["main.py", *argv])
    assert train_cli.run(_parse(train_cli, argv)) == 0
    meta = read_meta(out)
    assert meta.command.startswith("python main.py train --pairs-dir")
    assert meta.train_config["steps_per_epoch"] == 2
    assert "done" in capsys.readouterr().out


def test_train_cli_names_a_folder_given_as_a_store_and_starts_nothing(tmp_path, capsys) -> None:
    pairs = make_folder_pairs(tmp_path / "pairs", n=2)
    out = tmp_path / "m.safetensors"
    for argv, says in ((["--store", str(pairs)], "is a folder"),
                       (["--store", str(tmp_path / "none.h5")], "no such pair store"),
                       (["--pairs-dir", str(pairs / "lr" / "t00.png")], "is a file"),
                       (["--pairs-dir", str(tmp_path / "nope")], "no such folder")):
        assert train_cli.run(_parse(train_cli, ["train", *argv, "--out", str(out)])) == 2
        captured = capsys.readouterr()
        assert says in captured.err and "step" not in captured.err, captured.err
        assert not out.exists() and not list(tmp_path.glob("m.safetensors*"))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("m") / "m.safetensors",
                           params={"feats": 8, "layers": 1})


def test_enhance_cli_png_and_tiff_with_pixel_size(tmp_path, model_path) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(src)
    for name in ("out.png", "out.tif"):
        args = _parse(enhance_cli, ["enhance", str(src), str(tmp_path / name),
                                    "--model", str(model_path)])
        assert enhance_cli.run(args) == 0
    png = np.asarray(Image.open(tmp_path / "out.png"))
    assert png.shape == (50, 60, 3) and png.dtype == np.uint8
    tif = tifffile.imread(tmp_path / "out.tif")
    assert tif.shape == (50, 60, 3)
    assert read_pixel_size_um(tmp_path / "out.tif") == pytest.approx(0.065, rel=1e-4)


def test_enhance_cli_folder_batch_16bit(tmp_path, model_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        tifffile.imwrite(src / f"f{i}.tif", rng.integers(0, 65535, (16, 16, 3), np.uint16),
                         photometric="rgb")
    args = _parse(enhance_cli, ["enhance", str(src), str(tmp_path / "out"),
                                "--model", str(model_path)])
    assert enhance_cli.run(args) == 0
    outs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in outs] == ["f0.tif", "f1.tif"]
    img = tifffile.imread(outs[0])
    assert img.dtype == np.uint16 and img.shape == (40, 40, 3)
    assert read_pixel_size_um(outs[0]) == pytest.approx(0.065, rel=1e-4)


def test_enhance_cli_reports_a_bad_model(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model at all")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    args = _parse(enhance_cli, ["enhance", str(tmp_path / "in.png"), str(tmp_path / "o.png"),
                                "--model", str(bad)])
    assert enhance_cli.run(args) == 2
    assert "truncated or corrupt" in capsys.readouterr().out


def test_enhance_cli_refuses_a_tiff_from_another_objective(tmp_path, model_path, capsys) -> None:
    from thinkscope_gui.learn.imageio import write_image

    src = write_image(tmp_path / "ten_x.tif", np.zeros((16, 16, 3), np.uint8), 0.65)
    args = _parse(enhance_cli, ["enhance", str(src), str(tmp_path / "o.tif"),
                                "--model", str(model_path)])
    assert enhance_cli.run(args) == 2
    msg = capsys.readouterr().out
    assert "expects 40x" in msg and "0.65" in msg
    assert not (tmp_path / "o.tif").exists()
