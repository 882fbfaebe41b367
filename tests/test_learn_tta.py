"""Self-ensemble for stills (enhance --tta): the 8-orientation mean is exactly equivariant
to rotations and flips, keeps enhance's shape and dtype, and the CLI writes it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from main import main
from tests.learn_helpers import make_model_file
from thinkscope_gui.learn.infer import Enhancer
from thinkscope_gui.learn.tta import SelfEnsemble


@pytest.fixture(scope="module")
def enh(tmp_path_factory) -> Enhancer:
    path = make_model_file(tmp_path_factory.mktemp("m") / "m.safetensors",
                           params={"feats": 8, "layers": 1}, seed=3)
    return Enhancer.load(path, device="cpu")


def test_self_ensemble_is_equivariant_where_the_model_is_not(enh: Enhancer) -> None:
    x = np.random.default_rng(0).random((24, 30, 3), dtype=np.float32)
    plain, ens = enh.enhance(x), enh.enhance_tta(x)
    assert ens.shape == plain.shape == (60, 75, 3)
    # the random network is not equivariant: a flipped input gives a different output
    assert np.abs(enh.enhance(x[::-1].copy())[::-1] - plain).max() > 1e-3
    for t, undo in ((lambda a: a[::-1], lambda a: a[::-1]),
                    (lambda a: a[:, ::-1], lambda a: a[:, ::-1]),
                    (lambda a: np.rot90(a), lambda a: np.rot90(a, -1)),
                    (lambda a: np.rot90(a, 2)[:, ::-1], lambda a: np.rot90(a[:, ::-1], -2))):
        got = undo(enh.enhance_tta(np.ascontiguousarray(t(x))))
        np.testing.assert_allclose(got, ens, atol=1e-5)
    # it is the mean of the 8 oriented outputs (identity among them)
    assert np.abs(ens - plain).max() > 1e-4


def test_self_ensemble_keeps_shape_and_dtype_at_odd_sizes(enh: Enhancer) -> None:
    rng = np.random.default_rng(1)
    for a in (rng.integers(0, 255, (21, 17, 3), dtype=np.uint8),
              rng.integers(0, 4095, (19, 22), dtype=np.uint16)):
        bits = 12 if a.dtype == np.uint16 else None
        want = enh.enhance(a, bit_depth=bits)
        got = SelfEnsemble(enh).enhance(a, bit_depth=bits)
        assert got.shape == want.shape and got.dtype == want.dtype
        # same grid: the ensemble stays close to the plain output (no half-pixel shift)
        assert np.abs(got.astype(float) - want).mean() < 0.05 * (4095 if bits else 255)


def test_enhance_cli_tta(tmp_path, enh: Enhancer, capsys) -> None:
    rng = np.random.default_rng(2)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 255, (26, 20, 3), dtype=np.uint8)).save(src)
    for flag, name in (([], "plain.png"), (["--tta"], "tta.png")):
        assert main(["enhance", str(src), str(tmp_path / name), "--model", str(enh.path),
                     "--quiet", *flag]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain.png"))
    tta = np.asarray(Image.open(tmp_path / "tta.png"))
    assert tta.shape == plain.shape == (65, 50, 3)
    want = enh.enhance_tta(np.asarray(Image.open(src)))
    np.testing.assert_array_equal(tta, want)
    assert not np.array_equal(tta, plain)
