"""Foreign stands: labels mapped to profiles, safe focus and limits set once per
configuration (`main.py stand`), and no simulator-only metadata outside hardware/sim/."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import main
from hardware import SafetyError, open_microscope
from hardware.profiles import profile_from_label
from hardware.stage_settings import load_stage_settings, save_stage_settings, stand_key

ROOT = Path(__file__).resolve().parent.parent

# A lab-style stand built from our Python devices: foreign labels, pixel-size presets, an
# unnamed turret position
FOREIGN_CFG = """\
#py pyDevice,Cam,hardware.sim.devices,SimCamera
#py pyDevice,Stage,hardware.sim.devices,SimXYStage
#py pyDevice,Focus,hardware.sim.devices,SimZStage
#py pyDevice,Nosepiece,hardware.sim.devices,SimTurret
#py Property,Cam,SensorWidth,64
#py Property,Cam,SensorHeight,48
Property,Core,Initialize,1
#py Label,Nosepiece,0,Nikon 10X S Fluor
#py Label,Nosepiece,1,Nikon 40X Plan Fluor ELWD
#py Label,Nosepiece,2,Objective-2
#py Property,Core,Camera,Cam
#py Property,Core,XYStage,Stage
#py Property,Core,Focus,Focus
#py ConfigPixelSize,R10,Nosepiece,Label,Nikon 10X S Fluor
PixelSize_um,R10,1.0
#py ConfigPixelSize,R40,Nosepiece,Label,Nikon 40X Plan Fluor ELWD
PixelSize_um,R40,0.25
"""


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "lab.cfg"
    path.write_text(FOREIGN_CFG)
    return path


def _without_limits(scope):  # the sim Z/XY devices report limits; a lab's often do not
    scope._stage_limits = (-float("inf"), float("inf"), -float("inf"), float("inf"))
    scope._z_limits = (-float("inf"), float("inf"))
    return scope


@pytest.mark.parametrize("label, mag, na, immersion", [
    ("Nikon 40X Plan Fluor ELWD", 40, 0.65, "dry"),
    ("Nikon 10X S Fluor", 10, 0.25, "dry"),
    ("Plan Apo 60x/1.40 Oil", 60, 1.40, "oil"),
    ("UPlanSApo 60x W 1.2", 60, 1.2, "water"),
    ("100X Oil NA 1.45", 100, 1.45, "oil"),
    ("20x 0.75 NA", 20, 0.75, "dry"),
])
def test_labels_give_sensible_profiles(label: str, mag: float, na: float, immersion: str) -> None:
    p = profile_from_label(label, 0.25)
    assert (p.label, p.magnification, p.na, p.immersion) == (label, mag, na, immersion)
    assert p.pixel_size_um == 0.25 and not p.retired
    assert profile_from_label("Objective-2").retired  # an unnamed turret position


def test_foreign_labels_map_to_profiles_with_the_cfg_pixel_sizes(cfg: Path, _home: Path) -> None:
    with open_microscope(str(cfg)) as scope:
        p40 = scope.profile("Nikon 40X Plan Fluor ELWD")
        assert (p40.magnification, p40.immersion, p40.pixel_size_um) == (40, "dry", 0.25)
        assert scope.profile("Nikon 10X S Fluor").pixel_size_um == 1.0
        assert scope.profile("Objective-2").retired
        scope.set_objective("Nikon 10X S Fluor") if scope.objective() != "Nikon 10X S Fluor" \
            else None
        assert scope.pixel_size_um() == pytest.approx(1.0)  # from the core
    # the user's mapping (objectives.json, edited in the Objectives panel) wins per label
    _home.mkdir(parents=True, exist_ok=True)
    (_home / "objectives.json").write_text(json.dumps({"objectives": {
        "Nikon 40X Plan Fluor ELWD": {"magnification": 40, "na": 0.6, "immersion": "dry",
                                      "pixel_size_um": 0.2475}}}))
    with open_microscope(str(cfg)) as scope:
        assert scope.profile("Nikon 40X Plan Fluor ELWD").na == 0.6
        scope.core.setStateLabel("Nosepiece", "Nikon 40X Plan Fluor ELWD")
        # the calibrated pixel size became the core's: frames and plans agree
        assert scope.pixel_size_um() == pytest.approx(0.2475)


def test_settings_are_stored_per_configuration(tmp_path: Path, cfg: Path) -> None:
    other = tmp_path / "other.cfg"
    other.write_text(FOREIGN_CFG)
    path = save_stage_settings(str(cfg), safe_z=-5.0, z_limits=(-10.0, 50.0))
    save_stage_settings(str(other), stage_limits=(-1.0, 1.0, -2.0, 2.0))
    data = json.loads(path.read_text())
    assert data["stands"][str(cfg.resolve())] == {"safe_z_um": -5.0, "z_limits_um": [-10, 50]}
    assert load_stage_settings(source=str(cfg)) == {"safe_z": -5.0, "z_limits": (-10.0, 50.0)}
    assert load_stage_settings(source=str(other)) == {"stage_limits": (-1.0, 1.0, -2.0, 2.0)}
    assert stand_key("pycromanager") == "pycromanager:4827"
    with pytest.raises(Exception, match="z_limits_um"):
        save_stage_settings(str(cfg), z_limits=(5.0, -5.0))
    assert load_stage_settings(source=str(cfg))["safe_z"] == -5.0  # nothing lost


def test_no_safe_focus_says_exactly_how_to_set_it(cfg: Path) -> None:
    with open_microscope(str(cfg)) as scope:
        _without_limits(scope)
        with pytest.raises(SafetyError) as info:
            scope.set_objective("Nikon 40X Plan Fluor ELWD"
                                if scope.objective() != "Nikon 40X Plan Fluor ELWD"
                                else "Nikon 10X S Fluor")
        msg = str(info.value)
        assert f"python main.py --config {cfg} stand --safe-z Z" in msg
        assert "Objectives panel" in msg
        assert "XY stage limits" in scope.limits_warning()


def test_stand_command_prints_stores_and_the_next_session_uses_it(
        cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--config", str(cfg), "stand"]) == 0
    out = capsys.readouterr().out
    assert "'Nikon 40X Plan Fluor ELWD': 40x NA 0.65 dry, 0.25 µm/px" in out
    assert "(retired / empty position)" in out
    rc = main.main(["--config", str(cfg), "stand", "--safe-z=-3", "--z-limits=-20,40",
                    "--xy-limits=-1000,1000,-500,500"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "safe focus for objective changes (µm): -3" in out
    assert "XY limits (µm): [-1000, 1000], [-500, 500]" in out
    with open_microscope(str(cfg)) as scope:
        assert scope.safe_z() == -3.0 and scope.z_limits() == (-20.0, 40.0)
        assert scope.limits_warning() is None
        zs: list[float] = []
        scope.events.z_changed.connect(zs.append)
        scope.set_z(2.0)
        target = next(lb for lb in ("Nikon 40X Plan Fluor ELWD", "Nikon 10X S Fluor")
                      if lb != scope.objective())
        scope.set_objective(target)
        assert zs == [2.0, -3.0, 2.0]  # retracted to the stored safe focus, then back
        with pytest.raises(SafetyError, match="outside the stage limits"):
            scope.set_xy(5000.0, 0.0)
    # a safe focus outside the stored Z limits is refused, and nothing is lost
    assert main.main(["--config", str(cfg), "stand", "--safe-z=100"]) == 2
    assert "outside the Z limits" in capsys.readouterr().err
    assert load_stage_settings(source=str(cfg))["safe_z"] == -3.0


def test_bad_limits_are_refused_by_the_parser(cfg: Path) -> None:
    with pytest.raises(SystemExit):
        main.main(["--config", str(cfg), "stand", "--xy-limits", "1,2,3"])


SIM_ONLY = re.compile(r"Sim[A-Z]\w*_um|SimObjective|SimLampOn")


def test_nothing_outside_the_simulator_reads_simulator_metadata() -> None:
    offenders = []
    for folder in ("hardware", "thinkscope_gui", "main.py"):
        paths = [ROOT / folder] if folder.endswith(".py") else (ROOT / folder).rglob("*.py")
        for path in paths:
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("hardware", "sim"):
                continue
            if SIM_ONLY.search(path.read_text(encoding="utf-8")):
                offenders.append(str(rel))
    assert offenders == []


def test_live_frames_take_position_and_objective_from_the_core(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera whose metadata lies about the stage (as a foreign one may carry any
    metadata) must not move the frame: position, objective and pixel size are the core's."""
    from hardware.sim import devices

    real_fill = devices.SimCamera._fill

    def lying_fill(self, buf, live):  # noqa: ANN001
        md = real_fill(self, buf, live)
        md.update(SimX_um="12345.0", SimY_um="-999.0", SimZ_um="77.0", SimObjective="100x")
        return md

    monkeypatch.setattr(devices.SimCamera, "_fill", lying_fill)
    with open_microscope("sim", sensor=(32, 32)) as scope:
        scope.set_xy(100.0, 50.0)
        scope.start_live()
        try:
            deadline = time.monotonic() + 10
            frame = None
            while time.monotonic() < deadline and (frame is None or frame.number < 2):
                frame = scope.latest_frame()
                time.sleep(0.01)
            assert frame is not None
            assert frame.xy == scope.xy() == (100.0, 50.0)
            assert frame.z == pytest.approx(scope.z())
            assert frame.objective == scope.objective() == "40x"
            assert frame.pixel_size_um == pytest.approx(scope.core.getPixelSizeUm())
        finally:
            scope.stop_live()


def test_shipped_default_labels_take_the_configurations_pixel_size(
        tmp_path: Path, _home: Path) -> None:
    """A lab whose turret says "40x" has its own camera: the cfg's preset beats the
    simulator's 0.1625 µm/px default, until the lab saves its own profile."""
    cfg = tmp_path / "plain.cfg"
    cfg.write_text(FOREIGN_CFG.replace("Nikon 40X Plan Fluor ELWD", "40x"))
    with open_microscope(str(cfg)) as scope:
        p = scope.profile("40x")
        assert (p.pixel_size_um, p.na) == (0.25, 0.95)  # preset size, default optics
    _home.mkdir(parents=True, exist_ok=True)
    (_home / "objectives.json").write_text(json.dumps({"objectives": {
        "40x": {"pixel_size_um": 0.2}}}))
    with open_microscope(str(cfg)) as scope:
        assert scope.profile("40x").pixel_size_um == 0.2
