"""The one TIFF convention: the µm pixel size and our metadata survive a round trip
through tifffile, and ImageJ/Fiji sees µm wherever its format can hold the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from thinkscope_gui.tiff import read_pixel_size_um, read_tiff_meta, write_tiff

CASES = {  # name: (array, ImageJ can hold it)
    "raw_rgb8": (np.arange(16 * 20 * 3, dtype=np.uint8).reshape(16, 20, 3), True),
    "raw_grey16": (np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 7, True),
    "enhanced_rgb16": (np.arange(16 * 20 * 3, dtype=np.uint16).reshape(16, 20, 3) * 9, False),
    "enhanced_float": (np.linspace(0, 1, 16 * 20 * 3, dtype=np.float32).reshape(16, 20, 3),
                       False),
    "rgba8": (np.full((16, 20, 4), 200, np.uint8), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pixel_size_and_metadata_round_trip(tmp_path: Path, name: str) -> None:
    img, imagej = CASES[name]
    path = write_tiff(tmp_path / f"{name}.tif", img, 0.065, {"objective": "100x"})
    np.testing.assert_array_equal(tifffile.imread(path), img)
    assert read_pixel_size_um(path) == pytest.approx(0.065, rel=1e-6)
    meta = read_tiff_meta(path)
    assert meta["objective"] == "100x" and meta["pixel_size_um"] == pytest.approx(0.065)
    with tifffile.TiffFile(path) as tf:
        tags = tf.pages[0].tags
        num, den = tags["XResolution"].value
        if imagej:  # ImageJ TIFF: pixels per µm, unit "um"
            assert tf.imagej_metadata["unit"] == "um"
            assert den / num == pytest.approx(0.065, rel=1e-6)
        else:  # pixels per cm: Fiji shows the same length in cm
            assert tags["ResolutionUnit"].value == 3
            assert 1e4 * den / num == pytest.approx(0.065, rel=1e-6)


def test_a_tiff_without_calibration_reads_as_unknown(tmp_path: Path) -> None:
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint8))
    assert read_pixel_size_um(p) is None and read_tiff_meta(p) == {}
