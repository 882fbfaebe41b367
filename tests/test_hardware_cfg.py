"""Opening Micro-Manager .cfg files: discovery of turret and pixel sizes, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardware import MicroscopeError, open_microscope
from hardware.cores import SIM_CFG

# A lab-style config: our Python devices under other labels, a turret known only through
# the pixel-size presets (no "Objective" group), and a 20x that has no profile.
LAB_CFG = """\
Property,Core,Initialize,0
#py pyDevice,Cam,hardware.sim.devices,SimCamera
#py pyDevice,Stage,hardware.sim.devices,SimXYStage
#py pyDevice,Focus,hardware.sim.devices,SimZStage
#py pyDevice,Nosepiece,hardware.sim.devices,SimTurret
#py pyDevice,Shutter,hardware.sim.devices,SimLamp
#py Property,Cam,SensorWidth,48
#py Property,Cam,SensorHeight,40
Property,Core,Initialize,1
#py Label,Nosepiece,0,20x
#py Label,Nosepiece,1,40x
#py Label,Nosepiece,2,100x
#py Property,Core,Camera,Cam
#py Property,Core,XYStage,Stage
#py Property,Core,Focus,Focus
#py Property,Core,Shutter,Shutter
#py ConfigPixelSize,R20,Nosepiece,Label,20x
PixelSize_um,R20,0.325
#py ConfigPixelSize,R40,Nosepiece,Label,40x
PixelSize_um,R40,0.1625
#py ConfigPixelSize,R100,Nosepiece,Label,100x
PixelSize_um,R100,0.065
"""


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKSCOPE_HOME", str(tmp_path / "home"))


def test_cfg_with_python_devices_is_discovered(tmp_path: Path) -> None:
    cfg = tmp_path / "lab.cfg"
    cfg.write_text(LAB_CFG)
    with open_microscope(str(cfg)) as scope:
        assert scope.source == str(cfg)
        assert scope.objectives() == ["20x", "40x", "100x"]
        assert scope.image_shape() == (40, 48)
        scope.set_objective("40x")
        assert scope.pixel_size_um() == pytest.approx(0.1625)
        # a turret label without a profile gets one from the core's pixel-size preset
        assert scope.profile("20x").pixel_size_um == pytest.approx(0.325)
        assert scope.profile("20x").magnification == pytest.approx(20.0)
        scope.set_objective("20x")
        assert scope.pixel_size_um() == pytest.approx(0.325)
        assert scope.snap().shape == (40, 48, 3)


def test_shipped_sim_cfg_opens_as_a_file() -> None:
    with open_microscope(str(SIM_CFG), sensor=(32, 40)) as scope:
        assert scope.objectives() == ["10x", "40x", "100x"]
        assert scope.snap().shape == (32, 40, 3)


def test_missing_cfg_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.cfg"
    with pytest.raises(MicroscopeError, match="nowhere.cfg"):
        open_microscope(str(missing))


def test_bad_device_adapter_reports_file_and_core_message(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.cfg"
    cfg.write_text("Property,Core,Initialize,0\nDevice,Cam,NoSuchAdapterXYZ,Cam\n")
    with pytest.raises(MicroscopeError, match="broken.cfg") as info:
        open_microscope(str(cfg))
    assert "NoSuchAdapterXYZ" in str(info.value)


def test_bad_python_device_reports_line(tmp_path: Path) -> None:
    cfg = tmp_path / "badpy.cfg"
    cfg.write_text("#py pyDevice,Cam,hardware.sim.devices,NoSuchCamera\n")
    with pytest.raises(MicroscopeError, match="badpy.cfg") as info:
        open_microscope(str(cfg))
    assert "NoSuchCamera" in str(info.value)


PLAIN_STAGE_CFG = """\
#py pyDevice,Cam,hardware.sim.devices,SimCamera
#py pyDevice,Stage,hardware.sim.devices,SimXYStage
#py pyDevice,Focus,hardware.sim.devices,SimZStage
#py pyDevice,Nosepiece,hardware.sim.devices,SimTurret
Property,Core,Initialize,1
#py Property,Core,Camera,Cam
#py Property,Core,XYStage,Stage
#py Property,Core,Focus,Focus
#py ConfigGroup,Objective,40x,Nosepiece,Label,40x
#py ConfigGroup,Objective,100x,Nosepiece,Label,100x
"""


def test_stage_json_sets_limits_and_safe_z_for_real_stands(tmp_path: Path) -> None:
    cfg = tmp_path / "stand.cfg"
    cfg.write_text(PLAIN_STAGE_CFG)
    home = tmp_path / "home"
    home.mkdir()
    (home / "stage.json").write_text(
        '{"xy_limits_um": [-100, 100, -50, 50], "z_limits_um": [-20, 40], "safe_z_um": -15}'
    )
    with open_microscope(str(cfg)) as scope:
        assert scope.stage_limits() == (-100.0, 100.0, -50.0, 50.0)
        assert scope.z_limits() == (-20.0, 40.0)
        assert scope.safe_z() == -15.0
        with pytest.raises(MicroscopeError, match=r"x \[-100, 100\]"):
            scope.set_xy(150.0, 0.0)
        zs: list[float] = []
        scope.events.z_changed.connect(zs.append)
        scope.set_z(5.0)
        scope.set_objective("100x")
        assert zs == [5.0, -15.0, 5.0]
    (home / "stage.json").write_text('{"z_limits_um": [40, -20]}')
    with pytest.raises(MicroscopeError, match="stage.json.*z_limits_um"):
        open_microscope(str(cfg))
