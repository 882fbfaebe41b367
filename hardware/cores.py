"""Construction of the Micro-Manager cores the facade drives.

Three sources, one API (pymmcore-plus ``CMMCorePlus``): the simulated stand (``SimCore``,
a ``UniMMCore`` with our Python devices), a lab's ``.cfg`` file, and - elsewhere, in
:mod:`hardware.pycro` - a running Micro-Manager.  This module also papers over the
pymmcore-plus 0.18 gaps we depend on (pixel size on Python state devices, auto-shutter
for Python shutters, cores alive at interpreter exit).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import threading
import weakref
from pathlib import Path
from typing import Any

import pymmcore
from pymmcore_plus import CMMCorePlus, Keyword
from pymmcore_plus.experimental.unicore import Device, UniMMCore

from hardware.errors import MicroscopeError
from hardware.sim.devices import SimWorld, _SimPart

__all__ = ["RESOURCES", "SIM_CFG", "SIM_REALISTIC_CFG", "SimCore", "close_core", "load_cfg_core",
           "make_sim_core"]

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
SIM_CFG = RESOURCES / "sim.cfg"
SIM_REALISTIC_CFG = RESOURCES / "sim_realistic.cfg"

#: mechanical speeds used when the simulator is asked for realistic delays
SIM_XY_SPEED_UM_S = 5000.0
SIM_Z_SPEED_UM_S = 1000.0
SIM_TURRET_CHANGE_MS = 600.0

_OPEN_CORES: weakref.WeakSet[Any] = weakref.WeakSet()


def close_core(core: Any) -> None:
    """Stop acquisition and unload devices; idempotent, never raises.

    A core with loaded devices still alive when the interpreter tears down can abort the
    process (C++ destructor order), so every core we open is closed here or at exit.
    """
    with contextlib.suppress(Exception):
        if core.isSequenceRunning():
            core.stopSequenceAcquisition()
    with contextlib.suppress(Exception):
        if hasattr(core, "mda") and core.mda.is_running():
            core.mda.cancel()
    with contextlib.suppress(Exception):
        core.unloadAllDevices()
    # Without this and the collection at exit below, a core that ran a sequence aborts
    # the interpreter at exit ("FATAL: exception not rethrown"): the core's C++ threads
    # call back into Python and collect leftover acquisition cycles while the interpreter
    # is finalising.
    if isinstance(core, pymmcore.CMMCore):
        with contextlib.suppress(Exception):
            pymmcore.CMMCore.registerCallback(core, None)
    _OPEN_CORES.discard(core)


@atexit.register
def _close_all_cores() -> None:
    """Close what is still open, then collect the closed cores' leftover cycles once, while
    the interpreter is still whole. (A full collection costs up to a second with torch
    loaded, so closing a core does not do it each time.)"""
    for core in list(_OPEN_CORES):
        close_core(core)
    gc.collect()


def _track(core: Any) -> Any:
    _OPEN_CORES.add(core)
    return core


class SimCore(UniMMCore):
    """``UniMMCore`` for the simulated stand, with the pymmcore-plus 0.18 gaps filled."""

    def __init__(self) -> None:
        # a non-empty mm_path skips the (noisy, pointless) search for a Micro-Manager install
        self._stopping_threads: list[threading.Thread] = []  # told to stop, not yet joined
        super().__init__(mm_path=str(RESOURCES))
        self.sim_world = SimWorld()

    def loadPyDevice(self, label: str, device: Device) -> None:  # noqa: N802 - MM API
        """Attach simulated devices to this core's world so the camera sees the stages."""
        if isinstance(device, _SimPart):
            self.sim_world.attach(device)
        super().loadPyDevice(label, device)

    # ---- pixel size: configs keyed on a Python state device do not resolve in 0.18 ----

    # the stubs declare two overloads (with and without ``cached``); one default covers both
    def getCurrentPixelSizeConfig(  # type: ignore[override]  # noqa: N802
            self, cached: bool = False) -> str:
        """The pixel-size preset whose settings all match the current device state."""
        with contextlib.suppress(Exception):
            if found := super().getCurrentPixelSizeConfig(cached):
                return found
        for res_id in self.getAvailablePixelSizeConfigs():
            data = self.getPixelSizeConfigData(res_id)
            settings = list(data) if data is not None else []
            if settings and all(
                str(self.getProperty(dev, prop)) == str(value) for dev, prop, value in settings
            ):
                return res_id
        return ""

    def _binning(self) -> float:
        cam = self.getCameraDevice()
        with contextlib.suppress(Exception):
            if cam and self.hasProperty(cam, Keyword.Binning):
                return float(self.getProperty(cam, Keyword.Binning))
        return 1.0

    def getPixelSizeUm(self, cached: bool = False) -> float:  # noqa: N802
        if not (res_id := self.getCurrentPixelSizeConfig(cached)):
            return 0.0
        return self.getPixelSizeUmByID(res_id) * self._binning() / self.getMagnificationFactor()

    def getPixelSizeAffine(  # type: ignore[override]  # noqa: N802
            self, cached: bool = False) -> tuple[float, ...]:
        if not (res_id := self.getCurrentPixelSizeConfig(cached)):
            return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        affine = tuple(self.getPixelSizeAffineByID(res_id))
        if not any(affine):  # setPixelSizeUm does not set the affine in 0.18
            ps = self.getPixelSizeUmByID(res_id)
            affine = (ps, 0.0, 0.0, 0.0, ps, 0.0)
        factor = self._binning() / self.getMagnificationFactor()
        return tuple(v * factor for v in affine)

    def setPixelSizeUm(self, resolutionID: str, pixSize: float) -> None:  # noqa: N802,N803
        """Keep the affine in step with the scalar pixel size (0.18 leaves it stale)."""
        super().setPixelSizeUm(resolutionID, pixSize)
        with contextlib.suppress(Exception):
            super().setPixelSizeAffine(resolutionID, [pixSize, 0.0, 0.0, 0.0, pixSize, 0.0])

    # ---- bit depth: UniMMCore reports the dtype's bits (16 for a 12-bit camera) ----

    def getImageBitDepth(self) -> int:  # noqa: N802 - MM API
        """Significant bits of the Python camera (12 in uint16 on the realistic stand)."""
        cam = self._py_camera()
        if cam is not None and hasattr(cam, "significant_bits"):
            return int(cam.significant_bits())
        return super().getImageBitDepth()

    # ---- auto-shutter: the C++ core only opens C++ shutters ----

    def _auto_lamp(self) -> bool:
        return bool(self.getAutoShutter() and self.getShutterDevice() in self._pydevices)

    def _do_snap_image(self) -> None:
        self._join_stopped_sequence()
        auto = self._auto_lamp()
        if auto:
            self.sim_world.auto_lamp = True
        try:
            super()._do_snap_image()
        finally:
            if auto and not self.isSequenceRunning():
                self.sim_world.auto_lamp = False

    def _do_start_sequence_acquisition(self, *args: Any) -> None:
        self._join_stopped_sequence()
        self.sim_world.auto_lamp = self._auto_lamp()
        super()._do_start_sequence_acquisition(*args)

    def _do_start_continuous_sequence_acquisition(self, intervalMs: float = 0) -> None:  # noqa: N803
        self._join_stopped_sequence()
        self.sim_world.auto_lamp = self._auto_lamp()
        super()._do_start_continuous_sequence_acquisition(intervalMs)

    # ---- stopping a sequence does not wait for the camera thread ----

    def _do_stop_sequence_acquisition(self, cameraLabel: str) -> None:  # noqa: N803
        """Ask the camera thread to stop and return at once: the frame in the making is
        abandoned at its next tile, and whoever next uses the camera (a snap, a new
        sequence, unloading) waits for that thread. Stopping live view is often done on
        the GUI thread, which must not wait for a frame being rendered; a job that stops
        live view waits in its own thread at its first snap."""
        self.sim_world.sequence_stop.set()
        self._stop_event.set()
        thread, self._acquisition_thread = self._acquisition_thread, None
        if thread is not None and thread.is_alive():
            self._stopping_threads.append(thread)
        self.sim_world.auto_lamp = False

    def _stop_acquisition_thread(self, timeout: float | None = 2) -> None:
        """UniMMCore's stop-and-join (used when devices unload): also joins stopped ones."""
        super()._stop_acquisition_thread(timeout)
        self._join_stopped_sequence(timeout)

    def clearCircularBuffer(self) -> None:  # noqa: N802 - MM API
        """A stopped camera thread may still be filling a buffer slot: wait for it first."""
        self._join_stopped_sequence()
        super().clearCircularBuffer()

    def initializeCircularBuffer(self) -> None:  # noqa: N802 - MM API
        self._join_stopped_sequence()
        super().initializeCircularBuffer()

    def setCircularBufferMemoryFootprint(self, sizeMB: int) -> None:  # noqa: N802,N803
        self._join_stopped_sequence()
        super().setCircularBufferMemoryFootprint(sizeMB)

    def _join_stopped_sequence(self, timeout: float | None = 2) -> None:
        """Wait for camera threads that were told to stop (on the caller's thread)."""
        while True:
            try:
                thread = self._stopping_threads.pop()
            except IndexError:  # none left (another thread may have taken the last)
                return
            thread.join(timeout)


def _focus_on_slide(core: SimCore, turret: str = "Turret") -> None:
    """Start where an operator leaves a stand: the slide in focus under the current objective.

    A session that opens on a blurred field looks broken; the simulator knows its focal plane.
    """
    from hardware.sim.optics import DEFAULT_SIM_OPTICS
    from hardware.sim.slide import slide_surface_z

    optics = DEFAULT_SIM_OPTICS.get(core.getStateLabel(turret))
    if optics is None:
        return
    x, y = core.getXYPosition()
    core.setPosition(slide_surface_z(x, y) + optics.true_parfocal_z_um)
    core.waitForDevice(core.getFocusDevice())


def make_sim_core(
    sensor: tuple[int, int] | None = None,
    mechanical_delays: bool = False,
    cfg: Path | str = SIM_CFG,
) -> SimCore:
    """Simulated stand from ``resources/sim.cfg``; ``sensor`` is (height, width) in pixels."""
    core = _track(SimCore())
    try:
        core.loadSystemConfiguration(str(cfg))
        cam = core.getCameraDevice()
        if sensor is not None:
            core.setProperty(cam, "SensorHeight", int(sensor[0]))
            core.setProperty(cam, "SensorWidth", int(sensor[1]))
        if mechanical_delays:
            core.setProperty(core.getXYStageDevice(), "Speed_um_per_s", SIM_XY_SPEED_UM_S)
            core.setProperty(core.getFocusDevice(), "Speed_um_per_s", SIM_Z_SPEED_UM_S)
            for dev in core.getLoadedDevices():
                if core.hasProperty(dev, "ChangeTime_ms"):
                    core.setProperty(dev, "ChangeTime_ms", SIM_TURRET_CHANGE_MS)
        _focus_on_slide(core)
    except Exception as e:
        close_core(core)
        raise MicroscopeError(f"Could not start the simulated microscope from {cfg}: {e}") from e
    return core


def load_cfg_core(path: str | Path) -> CMMCorePlus:
    """A core loaded from a Micro-Manager ``.cfg``; errors name the file and the core's reason.

    Files with ``#py`` device lines need ``UniMMCore`` (our ``SimCore``); plain files get a
    ``CMMCorePlus`` with the installed Micro-Manager device adapters.
    """
    cfg = Path(path).expanduser()
    if not cfg.is_file():
        raise MicroscopeError(f"Micro-Manager configuration file not found: {cfg}")
    try:
        text = cfg.read_text(errors="replace")
    except OSError as e:
        raise MicroscopeError(f"Cannot read Micro-Manager configuration {cfg}: {e}") from e
    uses_python_devices = any(line.lstrip().startswith("#py ") for line in text.splitlines())
    core: CMMCorePlus = _track(SimCore() if uses_python_devices else CMMCorePlus())
    try:
        core.loadSystemConfiguration(str(cfg.resolve()))
    except Exception as e:
        close_core(core)
        reason = str(e).strip() or type(e).__name__
        raise MicroscopeError(
            f"Could not load Micro-Manager configuration {cfg}: {reason}"
        ) from e
    return core
