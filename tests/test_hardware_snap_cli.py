"""`main.py snap`: a calibrated TIFF whose resolution tags carry the objective's pixel size."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import tifffile

from thinkscope_gui.cli import snap
from thinkscope_gui.tiff import read_pixel_size_um, read_tiff_meta


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    snap.add_parser(sub)
    args = parser.parse_args(argv)
    args.source = "sim"  # what main.py sets from --config/--pycromanager
    return args


def test_snap_writes_calibrated_tiff(tmp_path: Path) -> None:
    out = tmp_path / "field.tif"
    args = _parse(["snap", str(out), "--objective", "100x", "--x", "250", "--y", "-40",
                   "--z", "1.5", "--exposure", "12", "--sensor", "48", "64"])
    assert snap.run(args) == 0
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.shape == (48, 64, 3)
        assert tif.imagej_metadata["unit"] == "um"  # Fiji shows µm
        num, den = page.tags["XResolution"].value
        assert den / num == pytest.approx(0.065, rel=1e-6)
    assert read_pixel_size_um(out) == pytest.approx(0.065, rel=1e-6)
    meta = read_tiff_meta(out)
    assert meta["pixel_size_um"] == pytest.approx(0.065)
    assert meta["objective"] == "100x"
    assert meta["stage_xy_um"] == pytest.approx([250.0, -40.0])
    assert meta["z_um"] == pytest.approx(1.5)
    assert meta["exposure_ms"] == pytest.approx(12.0)


def test_snap_reports_refused_moves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["snap", str(tmp_path / "x.tif"), "--x", "99999", "--sensor", "16", "16"])
    assert snap.run(args) == 2
    assert "outside the stage limits" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()
