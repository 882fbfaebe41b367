"""Hostile or broken model files: a clear ModelFileError, nothing large allocated.

The metadata of a real model file is fuzzed (deterministic pool of hostile values on every
field, plus random combinations) and every file is loaded in one subprocess whose peak RSS
growth is measured with resource.getrusage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from thinkscope_gui.learn.errors import ModelFileError
from thinkscope_gui.learn.meta import META_KEY
from thinkscope_gui.learn.modelfile import DEFAULT_MODELS, load_model, read_meta

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = [0, -1, 1, 3, 1e8, 10**30, 1e308, float("nan"), float("inf"), -float("inf"), "x",
           None, [], {}, True, 2**63, [0.0], [0.0, 0.0, 0.0], [1e9] * 3, "1" * 5000, 0.5, 100]
FIELDS = ["arch", "arch_params", "arch_params.feats", "arch_params.layers",
          "arch_params.blocks", "scale", "channels", "normalisation", "normalisation.std",
          "normalisation.mean", "normalisation.divisor", "lr_pixel_size_um",
          "hr_pixel_size_um", "bit_depth", "format", "format_version", "lr_profile"]


def _base() -> tuple[dict[str, torch.Tensor], dict]:
    src = DEFAULT_MODELS["fast"]
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = json.loads(f.metadata()[META_KEY])
    return tensors, meta


def _set(meta: dict, field: str, value: object) -> dict:
    out = json.loads(json.dumps(meta))
    *parents, last = field.split(".")
    d = out
    for p in parents:
        if not isinstance(d.get(p), dict):
            d[p] = {}
        d = d[p]
    d[last] = value
    return out


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: object) -> Path:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors, str(path), metadata={META_KEY: text, "format": "pt"})
    return path


def _fuzz_files(tmp: Path) -> list[Path]:
    import random

    tensors, meta = _base()
    files = []
    for i, field in enumerate(FIELDS):
        for j, value in enumerate(HOSTILE):
            files.append(_write(tmp / f"f{i}_{j}.safetensors", tensors, _set(meta, field, value)))
    rng = random.Random(9)
    for k in range(60):  # random combinations of two or three hostile fields
        m = meta
        for field in rng.sample(FIELDS, rng.randint(2, 3)):
            m = _set(m, field, rng.choice(HOSTILE))
        files.append(_write(tmp / f"r{k}.safetensors", tensors, m))
    # broken headers and weights
    files.append(_write(tmp / "notjson.safetensors", tensors, "{not json"))
    files.append(_write(tmp / "deep.safetensors", tensors, "[" * 100_000))
    bad = dict(tensors)
    k0 = next(iter(bad))
    bad[k0] = torch.zeros(7, 7)
    files.append(_write(tmp / "shape.safetensors", bad, meta))
    files.append(_write(tmp / "intdtype.safetensors",
                        {**tensors, k0: tensors[k0].to(torch.int32)}, meta))
    files.append(_write(tmp / "extra.safetensors", {**tensors, "evil": torch.zeros(3)}, meta))
    files.append(_write(tmp / "nan.safetensors",
                        {**tensors, k0: torch.full_like(tensors[k0], float("nan"))}, meta))
    big = _set(_set(meta, "arch", "quality"), "arch_params", {"feats": 128, "blocks": 32})
    files.append(_write(tmp / "bigarch.safetensors", tensors, big))
    (tmp / "trunc.safetensors").write_bytes(DEFAULT_MODELS["fast"].read_bytes()[:300])
    files.append(tmp / "trunc.safetensors")
    return files


_PROBE = r"""
import json, resource, sys
from thinkscope_gui.learn.errors import ModelFileError
from thinkscope_gui.learn.modelfile import DEFAULT_MODELS, load_model
load_model(DEFAULT_MODELS["fast"])            # warm: imports, allocator
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"ok": [], "error": [], "other": []}
for p in sys.argv[1:]:
    try:
        load_model(p)
        out["ok"].append(p)
    except ModelFileError as e:
        out["error"].append(str(e).splitlines()[0][:300])
    except BaseException as e:
        out["other"].append(f"{p}: {type(e).__name__}: {e}"[:300])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({**out, "growth_kb": peak - base}))
"""


def test_fuzzed_metadata_always_gives_a_clear_error_with_bounded_memory(tmp_path: Path) -> None:
    files = _fuzz_files(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", _PROBE, *map(str, files)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["other"] == [], res["other"][:5]
    assert len(res["error"]) > 0.8 * len(files)
    assert res["growth_kb"] < 200 * 1024, f"peak RSS grew {res['growth_kb'] / 1024:.0f} MB"
    for ok in res["ok"]:  # what loads must be a genuinely sane model
        meta = read_meta(ok)
        assert 1.5 <= meta.scale <= 5 and min(meta.normalisation.std) > 0


@pytest.mark.parametrize(("field", "value", "words"), [
    ("arch_params.layers", 10**8, "arch_params.layers"),
    ("normalisation.std", [0.0, 0.2, 0.2], "std must be > 0"),
    ("scale", 7.0, "scale = 7.0 is outside"),
    ("channels", 10**6, "channels"),
])
def test_named_hostile_fields(tmp_path: Path, field: str, value: object, words: str) -> None:
    tensors, meta = _base()
    path = _write(tmp_path / "m.safetensors", tensors, _set(meta, field, value))
    with pytest.raises(ModelFileError, match=words.replace("(", r"\(")):
        load_model(path)
    with pytest.raises(ModelFileError):
        read_meta(path)  # the GUI's catalogue refuses it too


def test_non_integer_scales_in_range_are_accepted(tmp_path: Path) -> None:
    from thinkscope_gui.learn.modelfile import check_arch

    for s in (1.5, 2.0, 2.5, 3.3, 4.0, 5.0):
        check_arch("fast", 3, s, {"feats": 16, "layers": 1})
    for s in (1.49, 5.01, float("nan")):
        with pytest.raises(ModelFileError):
            check_arch("fast", 3, s, {})


def test_enhance_cli_refuses_zero_std_model(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    tensors, meta = _base()
    model = _write(tmp_path / "m.safetensors", tensors,
                   _set(meta, "normalisation.std", [0.0, 0.0, 0.0]))
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(tmp_path / "in.png")
    env = dict(os.environ, PYTHONPATH=str(ROOT), THINKSCOPE_HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "enhance", str(tmp_path / "in.png"),
                        str(tmp_path / "out.png"), "--model", str(model)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "std must be > 0" in (r.stdout + r.stderr)
    assert not (tmp_path / "out.png").exists()
