"""The optional inference engines (ONNX Runtime, OpenVINO) that `main.py bench engines`
measures: when installed (`pip install .[engines]`), each one built from a real network
must give eager torch's output; when not installed these tests skip and say why."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.learn_helpers import tiny_model_at_scale
from thinkscope_gui.learn.bench_engines import ADOPT_MAX_DIFF, OnnxEngines, optional_engines

HAVE = optional_engines()
pytestmark = pytest.mark.skipif(
    not (HAVE["onnxruntime"] or HAVE["openvino"]),
    reason="ONNX Runtime and OpenVINO are not installed (optional: pip install '.[engines]')")


def test_engines_match_eager_on_a_real_network() -> None:
    model, _meta = tiny_model_at_scale(2.5)
    model.eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.inference_mode():
        ref = model(x)
    engines = OnnxEngines(model, x, threads=1, log=lambda _m: None)
    calls = engines.calls(x)
    assert calls, engines.errors   # at least one engine was built
    if HAVE["onnxruntime"] and importlib.util.find_spec("onnxscript") is not None:
        assert "onnxruntime (dynamo export)" in calls, engines.errors
    for name, call in calls.items():
        y = call()
        assert y.shape == ref.shape == (1, 3, 120, 160), name
        tol = 0.05 if "bf16" in name else ADOPT_MAX_DIFF
        assert float((y - ref).abs().max()) < tol, name
