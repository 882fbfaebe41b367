"""Networks, model files and the Enhancer (shapes, dtypes, tiling, errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hardware.profiles import load_profiles
from tests.learn_helpers import make_model_file
from thinkscope_gui.learn import Enhancer, ModelFileError, ModelMismatchError
from thinkscope_gui.learn.modelfile import load_model, read_meta
from thinkscope_gui.learn.models import bicubic, build_model

torch.set_num_threads(1)
SCALE = load_profiles()["40x"].pixel_size_um / load_profiles()["100x"].pixel_size_um


@pytest.mark.parametrize("arch", ["fast", "quality"])
@pytest.mark.parametrize("hw", [(40, 40), (41, 37), (7, 12)])
def test_output_is_exactly_round_h_scale(arch: str, hw: tuple[int, int]) -> None:
    m = build_model(arch, 3, SCALE, {"feats": 8} if arch == "fast" else {"feats": 8,
                                                                         "blocks": 1})
    y = m(torch.rand(1, 3, *hw))
    assert y.shape[-2:] == (round(hw[0] * SCALE), round(hw[1] * SCALE))


def test_fresh_model_starts_at_bicubic() -> None:
    m = build_model("fast", 3, SCALE)
    x = torch.rand(1, 3, 20, 20)
    assert torch.allclose(m(x), bicubic(x, SCALE), atol=1e-6)
    # the bicubic skip keeps the grid for odd sizes: a prefix of a larger frame agrees
    big = torch.rand(1, 3, 41, 41)
    assert torch.allclose(bicubic(big, SCALE)[..., :80, :80],
                          bicubic(big[..., :37, :37], SCALE)[..., :80, :80], atol=1e-5)


def test_model_file_roundtrip_and_metadata(tmp_path, monkeypatch) -> None:
    path = make_model_file(tmp_path / "m.safetensors")
    # loading must never unpickle
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used"))
    model, meta = load_model(path)
    assert meta.arch == "fast" and meta.scale == pytest.approx(2.5)
    assert meta.lr_profile.label == "40x" and meta.hr_profile.label == "100x"
    assert read_meta(path).created == meta.created
    ref = build_model("fast", 3, SCALE)
    assert set(model.state_dict()) == set(ref.state_dict())


def test_corrupt_files_raise_model_file_error(tmp_path) -> None:
    good = make_model_file(tmp_path / "m.safetensors").read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good[: len(good) // 2])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    for p in (trunc, junk, tmp_path / "missing.safetensors"):
        with pytest.raises(ModelFileError):
            Enhancer.load(p)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ModelFileError, match="not a ThinkScope model"):
        Enhancer.load(plain)


@pytest.fixture(scope="module")
def enhancer(tmp_path_factory) -> Enhancer:
    path = make_model_file(tmp_path_factory.mktemp("m") / "m.safetensors",
                           params={"feats": 8, "layers": 1})
    return Enhancer.load(path, device="cpu")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(30, 34, 3), (30, 34)])
def test_enhance_keeps_dtype_and_channels(enhancer: Enhancer, dtype, shape) -> None:
    rng = np.random.default_rng(1)
    if dtype == np.float32:
        frame = rng.random(shape, dtype=np.float32)
    else:
        frame = rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
    out = enhancer.enhance(frame)
    assert out.dtype == frame.dtype
    assert out.shape == (round(30 * SCALE), round(34 * SCALE), *shape[2:])


def test_tiled_equals_untiled(enhancer: Enhancer) -> None:
    rng = np.random.default_rng(2)
    frame = rng.random((150, 133, 3), dtype=np.float32)
    whole = enhancer.enhance(frame)
    tile, enhancer.tile = enhancer.tile, 48   # force a 4x3 grid of tiles
    try:
        tiled = enhancer.enhance(frame)
    finally:
        enhancer.tile = tile
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 1e-4


def test_wrong_objective_names_the_expected_one(enhancer: Enhancer) -> None:
    profiles = load_profiles()
    enhancer.check_objective(profiles["40x"])
    with pytest.raises(ModelMismatchError, match="expects the 40x objective"):
        enhancer.check_objective(profiles["10x"])
    wrong_px = profiles["40x"].model_copy(update={"pixel_size_um": 0.2})
    with pytest.raises(ModelMismatchError, match="40x"):
        enhancer.check_objective(wrong_px)


def test_newer_format_version_is_refused(tmp_path) -> None:
    from thinkscope_gui.learn.modelfile import read_tensors, save_model

    model, meta = load_model(make_model_file(tmp_path / "m.safetensors"))
    newer = save_model(model, meta.model_copy(update={"format_version": 99}),
                       tmp_path / "new.safetensors")
    assert read_tensors(newer)[0]  # the file itself is fine
    with pytest.raises(ModelFileError, match="newer"):
        read_meta(newer)
