"""pycromanager bridge: fast failure when nobody listens, and the snake_case adapter.

The adapter is exercised on a core shaped like pycromanager's: every camelCase method of
a simulated CMMCorePlus is renamed with pyjavaz's own camel->snake conversion, returned
objects are wrapped the same way, string lists come back as Java-like vectors
(size()/get(i)), and images arrive as tagged images with a flat, signed ``pix``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyjavaz.bridge import _camel_case_2_snake_case

from hardware import MicroscopeError, SafetyError, open_microscope
from hardware.cores import close_core, make_sim_core
from hardware.microscope import Microscope
from hardware.profiles import load_profiles
from hardware.pycro import PycroCoreAdapter, camel_to_snake, parse_port, tagged_to_array

SENSOR = (24, 32)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_micromanager_fails_fast_with_instructions() -> None:
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(MicroscopeError) as info:
        open_microscope(f"pycromanager:{port}")
    assert time.monotonic() - t0 < 5.0
    msg = str(info.value)
    assert f"No Micro-Manager is listening on port {port}" in msg
    assert "ZMQ server" in msg and "Tools > Options" in msg


def test_parse_port() -> None:
    assert parse_port("pycromanager") == 4827
    assert parse_port("pycromanager:5001") == 5001
    with pytest.raises(MicroscopeError, match="port"):
        parse_port("pycromanager:abc")


def test_conversion_matches_pyjavaz() -> None:
    for name in ("getXYPosition", "snapImage", "getTaggedImage", "getImageBitDepth",
                 "getAvailablePixelSizeConfigs", "setXYPosition", "getXPosition"):
        assert camel_to_snake(name) == _camel_case_2_snake_case(name)


# --------------------------------------------------------------- a pycromanager-like core


class JavaVector:
    """What pyjavaz gives for StrVector: size() and get(i), not a Python sequence."""

    def __init__(self, items: Any) -> None:
        self._items = list(items)

    def size(self) -> int:
        return len(self._items)

    def get(self, i: int) -> Any:
        return self._items[i]


class TaggedImage:
    def __init__(self, tags: dict[str, Any], pix: np.ndarray) -> None:
        self.tags = tags
        self.pix = pix


def _javaish(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | np.ndarray | type(None)):
        return value
    if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
        return JavaVector(value)
    if isinstance(value, tuple | list):
        return value
    return SnakeObject(value)


class SnakeObject:
    """A JavaObject-like view: methods renamed camel->snake exactly as pyjavaz does."""

    def __init__(self, target: Any) -> None:
        methods: dict[str, Any] = {}
        for name in dir(type(target)):
            if name.startswith("_"):
                continue
            attr = getattr(target, name, None)
            if callable(attr):
                methods.setdefault(_camel_case_2_snake_case(name), attr)
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        try:
            fn = self._methods[name]
        except KeyError:
            raise AttributeError(name) from None
        return lambda *a: _javaish(fn(*a))


class FakeJavaCore(SnakeObject):
    """MMCoreJ over ZMQ, simulated: snake_case methods, tagged images as flat signed bytes."""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self._core = core

    def _tagged(self, img: np.ndarray, md: Any = None) -> TaggedImage:
        h, w = img.shape[:2]
        bgra = np.zeros((h, w, 4), np.uint8)
        bgra[..., :3] = img[..., ::-1]  # RGB -> BGR, alpha 0, as MMCoreJ's RGB32
        tags = dict(md) if md is not None else {}
        tags.update({"Width": w, "Height": h, "PixelType": "RGB32"})
        return TaggedImage(tags, bgra.reshape(-1).view(np.int8))  # Java byte[] is signed

    def get_tagged_image(self) -> TaggedImage:
        return self._tagged(self._core.getImage())

    def get_last_tagged_image(self) -> TaggedImage:
        img, md = self._core.getLastImageAndMD()
        return self._tagged(img, md)


@pytest.fixture
def bridged() -> Iterator[tuple[Microscope, Any]]:
    sim = make_sim_core(sensor=SENSOR)
    sim.setProperty("Camera", "Noise", "Off")
    scope = Microscope(
        PycroCoreAdapter(FakeJavaCore(sim)), "pycromanager:0", load_profiles(), owns_core=False
    )
    try:
        yield scope, sim
    finally:
        scope.close()
        close_core(sim)


def test_adapter_snap_matches_direct_core(bridged: tuple[Microscope, Any]) -> None:
    scope, sim = bridged
    img = scope.snap()
    assert img.shape == (*SENSOR, 3) and img.dtype == np.uint8
    sim.snapImage()
    direct = sim.getImage()
    np.testing.assert_array_equal(img, direct)  # BGRA and signed bytes undone exactly
    assert scope.bit_depth() == 8
    assert scope.image_shape() == SENSOR


def test_adapter_stage_and_objective(bridged: tuple[Microscope, Any]) -> None:
    scope, sim = bridged
    assert scope.objectives() == ["10x", "40x", "100x"]
    assert scope.stage_limits() == (-25000.0, 25000.0, -10000.0, 10000.0)
    scope.set_xy(12.5, -7.0)
    assert sim.getXYPosition() == pytest.approx((12.5, -7.0))
    assert scope.xy() == pytest.approx((12.5, -7.0))
    scope.set_z(4.0)
    zs: list[float] = []
    scope.events.z_changed.connect(zs.append)
    scope.set_objective("100x")
    assert sim.getStateLabel("Turret") == "100x"
    assert zs[0] == -500.0 and zs[-1] == 4.0  # retracted first, then back to focus
    assert scope.pixel_size_um() == pytest.approx(0.065)
    with pytest.raises(SafetyError):
        scope.set_objective("10x")
    with pytest.raises(SafetyError):
        scope.set_xy(0.0, 20000.0)


def test_adapter_live_stream(bridged: tuple[Microscope, Any]) -> None:
    scope, _ = bridged
    scope.set_exposure(2.0)
    scope.start_live()
    numbers: list[int] = []
    deadline = time.monotonic() + 10.0
    while len(numbers) < 3 and time.monotonic() < deadline:
        f = scope.latest_frame()
        if f is not None and (not numbers or f.number != numbers[-1]):
            numbers.append(f.number)
        time.sleep(0.002)
    scope.stop_live()
    assert numbers == [1, 2, 3]


def test_tagged_gray16_from_signed_shorts() -> None:
    values = np.array([[0, 1000], [40000, 65535]], np.uint16)
    tagged = TaggedImage({"Width": 2, "Height": 2, "PixelType": "GRAY16"}, values.view(np.int16))
    img, tags = tagged_to_array(tagged)
    np.testing.assert_array_equal(img, values)
    assert tags["PixelType"] == "GRAY16"
    with pytest.raises(MicroscopeError, match="bytes"):
        tagged_to_array(TaggedImage({"Width": 3, "Height": 2, "PixelType": "GRAY16"},
                                    values.view(np.int16)))
