"""The facade on the simulated stand: objectives, safety, camera, live stream, events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hardware import MicroscopeError, SafetyError, open_microscope
from hardware.microscope import Microscope

SENSOR = (120, 160)  # (H, W): non-square so a transposition would show


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))


@pytest.fixture
def scope() -> Iterator[Microscope]:
    s = open_microscope("sim", sensor=SENSOR, mechanical_delays=False)
    try:
        yield s
    finally:
        s.close()


def _wait_for_frames(scope: Microscope, n: int, timeout_s: float = 10.0) -> list[int]:
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        f = scope.latest_frame()
        if f is not None and (not seen or f.number != seen[-1]):
            seen.append(f.number)
            if len(seen) >= n:
                break
        time.sleep(0.002)
    return seen


def test_objectives_and_pixel_size_follow_turret(scope: Microscope) -> None:
    assert scope.source == "sim"
    assert scope.objectives() == ["10x", "40x", "100x"]
    scope.set_objective("40x")
    assert scope.objective() == "40x"
    assert scope.pixel_size_um() == pytest.approx(0.1625)
    assert scope.core.getPixelSizeUm() == pytest.approx(0.1625)  # the 0.18 gap is filled
    scope.set_objective("100x")
    assert scope.pixel_size_um() == pytest.approx(0.065)
    assert scope.core.getPixelSizeUm() == pytest.approx(0.065)
    assert scope.core.getPixelSizeAffine()[0] == pytest.approx(0.065)
    assert scope.profile().immersion == "oil"
    assert scope.profile("10x").pixel_size_um == pytest.approx(0.65)
    with pytest.raises(MicroscopeError, match="60x"):
        scope.set_objective("60x")


def test_stage_limits_refused(scope: Microscope) -> None:
    assert scope.stage_limits() == (-25000.0, 25000.0, -10000.0, 10000.0)
    assert scope.z_limits() == (-500.0, 500.0)
    scope.set_xy(1000.0, -2000.0)
    with pytest.raises(SafetyError, match=r"x \[-25000, 25000\].*y \[-10000, 10000\]"):
        scope.set_xy(25000.5, 0.0)
    with pytest.raises(SafetyError, match="limits"):
        scope.move_xy_by(0.0, -9000.0)
    with pytest.raises(SafetyError, match=r"\[-500, 500\]"):
        scope.set_z(600.0)
    assert scope.xy() == pytest.approx((1000.0, -2000.0))  # nothing moved


def test_z_retracted_before_turret_moves(scope: Microscope) -> None:
    log: list[tuple[str, object]] = []
    ev = scope.core.events
    ev.stagePositionChanged.connect(lambda dev, z: log.append(("z", round(z, 3))))
    ev.propertyChanged.connect(
        lambda dev, prop, val: log.append(("turret", val)) if prop == "Label" else None
    )
    scope.set_z(12.0)
    log.clear()
    scope.set_objective("10x")
    first_turret = next(i for i, e in enumerate(log) if e[0] == "turret")
    assert ("z", -500.0) in log[:first_turret], log
    assert log[-1] == ("z", 12.0)  # focus returns (no parfocal difference by default)
    assert scope.z() == pytest.approx(12.0)


def test_parfocal_and_parcentric_offsets_applied(scope: Microscope) -> None:
    p = scope.profiles
    scope.set_profiles({
        "40x": p["40x"].model_copy(update={"offset_xy_um": (2.0, -1.0), "parfocal_z_um": 1.5}),
        "100x": p["100x"].model_copy(update={"offset_xy_um": (5.0, 3.0), "parfocal_z_um": 4.0}),
    })
    scope.set_objective("40x")
    scope.set_xy(100.0, 200.0)
    scope.set_z(10.0)
    scope.set_objective("100x")
    # same specimen point stays centred: stage + offset is conserved
    assert scope.xy() == pytest.approx((100.0 - 3.0, 200.0 - 4.0))
    assert scope.z() == pytest.approx(10.0 + 2.5)
    scope.set_objective("40x", confirm_oil_to_dry=True, apply_offsets=False)
    assert scope.xy() == pytest.approx((97.0, 196.0))


def test_oil_to_dry_needs_confirmation(scope: Microscope) -> None:
    scope.set_objective("10x")
    scope.set_objective("100x")  # dry -> oil is fine
    with pytest.raises(SafetyError, match="oil"):
        scope.set_objective("40x")
    assert scope.objective() == "100x"
    scope.set_objective("40x", confirm_oil_to_dry=True)
    assert scope.objective() == "40x"


@pytest.mark.parametrize(("bits", "dtype"), [(8, np.uint8), (16, np.uint16)])
def test_snap_shape_and_dtype(scope: Microscope, bits: int, dtype: type) -> None:
    scope.core.setProperty(scope.core.getCameraDevice(), "BitDepth", str(bits))
    img = scope.snap()
    assert scope.image_shape() == SENSOR
    assert img.shape == (*SENSOR, 3)
    assert img.dtype == dtype
    assert scope.bit_depth() == bits
    assert img.max() > 0  # the lamp is opened by auto-shutter for the exposure


def test_lamp_closed_gives_dark_frames(scope: Microscope) -> None:
    core = scope.core
    core.setAutoShutter(False)
    core.setShutterOpen(False)
    assert scope.snap().max() == 0
    core.setShutterOpen(True)
    assert scope.snap().max() > 0


def test_exposure_roundtrip_and_event(scope: Microscope) -> None:
    got: list[float] = []
    scope.events.exposure_changed.connect(got.append)
    scope.set_exposure(25.0)
    assert scope.exposure() == pytest.approx(25.0)
    assert got == [25.0]
    with pytest.raises(MicroscopeError):
        scope.set_exposure(0.0)


def test_live_numbers_increase_and_repeats_are_skipped(scope: Microscope) -> None:
    scope.set_exposure(2.0)
    assert scope.latest_frame() is None
    scope.start_live()
    assert scope.is_live()
    seen = _wait_for_frames(scope, 4)
    assert len(seen) >= 4
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[:2] == [1, 2]  # one number per new frame, no gaps from repeats
    frame = scope.latest_frame()
    assert frame is not None
    assert frame.image.shape == (*SENSOR, 3)
    assert frame.objective == scope.objective()
    assert frame.pixel_size_um == pytest.approx(scope.pixel_size_um())
    # stop the camera underneath: the buffer keeps its last image, which must not
    # come back as a "new" frame
    scope.core.stopSequenceAcquisition()
    last = scope.latest_frame()
    assert last is not None
    again = scope.latest_frame()
    assert again is not None and again.number == last.number
    scope.stop_live()
    assert not scope.is_live()


def test_snap_during_live_returns_fresh_frame(scope: Microscope) -> None:
    scope.set_exposure(2.0)
    scope.start_live()
    img = scope.snap()
    assert img.shape == (*SENSOR, 3)
    scope.stop_live()


def test_position_events(scope: Microscope) -> None:
    xy: list[tuple[float, float]] = []
    zs: list[float] = []
    objs: list[str] = []
    scope.events.xy_changed.connect(lambda x, y: xy.append((x, y)))
    scope.events.z_changed.connect(zs.append)
    scope.events.objective_changed.connect(objs.append)
    scope.set_xy(10.0, 20.0)
    scope.move_xy_by(1.0, 1.0)
    scope.set_z(3.0)
    assert xy == [(10.0, 20.0), (11.0, 21.0)]
    assert zs == [3.0]
    # moves made on the core directly (e.g. by an MDA) are relayed too
    scope.core.setXYPosition(5.0, 6.0)
    scope.core.setPosition(-1.0)
    scope.core.setStateLabel("Turret", "10x")
    assert xy[-1] == (5.0, 6.0)
    assert zs[-1] == -1.0
    assert objs[-1] == "10x"


def test_mechanical_delays_wait_for_arrival() -> None:
    with open_microscope("sim", sensor=(32, 32), mechanical_delays=True) as s:
        s.set_xy(50.0, 0.0)  # 50 µm at 5 mm/s: about 10 ms
        assert s.xy() == pytest.approx((50.0, 0.0))
        assert not s.core.deviceBusy(s.core.getXYStageDevice())


def test_close_is_idempotent_and_final() -> None:
    s = open_microscope("sim", sensor=(32, 32))
    s.close()
    s.close()
    with pytest.raises(MicroscopeError, match="closed"):
        s.set_xy(0.0, 0.0)


def test_turret_waits_for_retraction_with_mechanical_delays() -> None:
    with open_microscope("sim", sensor=(16, 16), mechanical_delays=True) as s:
        core = s.core
        s.set_z(20.0)
        z_at_turn: list[float] = []
        core.events.propertyChanged.connect(
            lambda dev, prop, val: z_at_turn.append(core.getPosition())
            if dev == "Turret" and prop == "Label" else None
        )
        s.set_objective("10x")
        assert z_at_turn and z_at_turn[0] == pytest.approx(-500.0)  # arrived before the turn
        assert s.z() == pytest.approx(20.0)
        assert s.objective() == "10x"
