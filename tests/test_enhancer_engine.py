"""Enhancer's engine (learn/engines.py): with OpenVINO installed the quality model runs
through one compiled tile shape, and full frames of odd sizes (edge tiles padded to that
shape) must equal torch eager on the whole frame within 1e-3 on [0, 1]; without it, or when
told to, torch runs and the CLI says which engine it used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import main
from tests.learn_helpers import make_model_file
from thinkscope_gui.learn import engines
from thinkscope_gui.learn.infer import Enhancer

HAVE_OV = engines.openvino_available()
TINY = {"feats": 8, "blocks": 1}   # the quality architecture, small enough to export fast


@pytest.fixture(scope="module")
def quality_file(tmp_path_factory: pytest.TempPathFactory):
    return make_model_file(tmp_path_factory.mktemp("eng") / "q.safetensors", arch="quality",
                           params=TINY, seed=3)


def _eager(enh: Enhancer, x: np.ndarray) -> np.ndarray:
    """The network on the whole frame, no tiles, no engine (the reference)."""
    n = enh.meta.normalisation
    mean = torch.tensor(n.mean).view(1, -1, 1, 1)
    std = torch.tensor(n.std).view(1, -1, 1, 1)
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    with torch.inference_mode():
        y = (enh.model((t - mean) / std) * std + mean).clamp(0, 1)
    return y[0].permute(1, 2, 0).numpy()


@pytest.mark.skipif(not HAVE_OV, reason="openvino or onnxscript is not installed (optional: "
                    "pip install '.[engines]'); Enhancer uses torch")
def test_openvino_tiles_equal_eager_on_odd_full_frames(quality_file, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        enh = Enhancer.load(quality_file)
        sh, sw = enh.engine_shape
        rng = np.random.default_rng(0)
        # tiled both ways with short edge tiles; one axis just over a tile; smaller than
        # one tile (padded); all odd
        for h, w in ((sh + 13, 2 * sw - 11), (sh + 1, sw // 2 + 7), (sh - 7, sw - 41)):
            x = rng.random((h, w, 3), dtype=np.float32)
            x[: h // 2] = np.round(x[: h // 2] * 4) / 4   # flat patches next to noise
            y = enh.enhance(x)
            ref = _eager(enh, x)
            assert y.shape == ref.shape == (*enh.output_shape(h, w), 3)
            assert float(np.abs(y - ref).max()) < engines.MAX_DIFF, (h, w)
        assert enh.engines_used == {f"openvino ({sh}x{sw} tiles, 1 threads)"}
        eng = enh.engine(sh, sw)
        assert isinstance(eng, engines.OpenVinoTile)
        # the threads setting reaches OpenVINO; a second load of the file reuses the build
        assert int(eng._compiled.get_property("INFERENCE_NUM_THREADS")) == 1
        assert Enhancer.load(quality_file).engine(sh, sw) is eng
        # a new process reads the converted network from the disk cache, not an export
        cached = sorted(p.name for p in engines.cache_dir().iterdir())
        assert len(cached) == 2 and cached[0].endswith(".bin") and cached[1].endswith(".xml")
        again = engines._build(enh.model, quality_file, 3, enh.scale, (sh, sw), 1)
        assert isinstance(again, engines.OpenVinoTile) and again is not eng
        assert eng.source == "export" and again.source == "cache"
        mono = rng.integers(0, 4096, (sh + 5, sw - 3), dtype=np.uint16)  # 12-bit grey
        got = enh.enhance(mono, bit_depth=12)
        monkeypatch.setenv(engines.ENGINE_ENV, "torch")
        want = enh.enhance(mono, bit_depth=12)
        assert got.dtype == np.uint16 and int(np.abs(got.astype(int) - want).max()) <= 2
        assert any(u.startswith("torch (THINKSCOPE_ENGINE") for u in enh.engines_used)
    finally:
        torch.set_num_threads(threads)


def test_torch_runs_without_openvino_and_the_cli_names_the_engine(
        quality_file, tmp_path, capsys, monkeypatch) -> None:
    if HAVE_OV:   # exercise the fallback the way a user would ask for it
        monkeypatch.setenv(engines.ENGINE_ENV, "torch")
        why = "THINKSCOPE_ENGINE=torch"
    else:
        why = "is not installed (pip install '.[engines]')"
    rng = np.random.default_rng(1)
    img = (rng.random((421, 400, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    rc = main.main(["enhance", str(tmp_path / "in.png"), str(tmp_path / "out.png"),
                    "--model", str(quality_file), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    line = [ln for ln in out.splitlines() if ln.startswith("engine: ")]
    assert len(line) == 1 and line[0].startswith("engine: torch (") and why in line[0], out
    enh = Enhancer.load(quality_file)
    y = enh.enhance(img.astype(np.float32) / 255)
    assert float(np.abs(y - _eager(enh, img.astype(np.float32) / 255)).max()) < 1e-5
    assert len(enh.engines_used) == 1 and why in next(iter(enh.engines_used))
