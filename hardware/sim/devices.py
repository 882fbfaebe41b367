"""pymmcore-plus Python device adapters for the simulated stand.

These are real ``UniMMCore`` devices (loaded from ``resources/sim.cfg`` with ``#py pyDevice``
lines), so everything above them - MDA, the facade, the GUI - runs the same code paths
as on hardware.  The optics live in :mod:`hardware.sim.render`; this module only keeps
the mechanical state (stage, focus, turret, lamp) and asks the renderer for pixels.

The devices of one core share a :class:`SimWorld` so the camera can see where the
stages are.  ``SimCore`` attaches it explicitly; on a plain ``UniMMCore`` the devices
find each other through the core's event object.
"""

from __future__ import annotations

import inspect
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from pymmcore_plus.core._constants import FocusDirection
from pymmcore_plus.experimental.unicore import (
    CameraDevice,
    ShutterDevice,
    StageDevice,
    StateDevice,
    XYStageDevice,
    pymm_property,
)

__all__ = [
    "CAMERA_PIXEL_UM",
    "SimCamera",
    "SimLamp",
    "SimTurret",
    "SimWorld",
    "SimXYStage",
    "SimZStage",
]

#: physical pitch of the simulated sensor (µm); the sample-plane pixel is this / magnification
CAMERA_PIXEL_UM = 6.5


class SimWorld:
    """Mechanical state shared by the devices of one simulated stand."""

    def __init__(self) -> None:
        self.xy_stage: SimXYStage | None = None
        self.z_stage: SimZStage | None = None
        self.turret: SimTurret | None = None
        self.lamp: SimLamp | None = None
        self.camera: SimCamera | None = None
        #: set by SimCore while it holds the lamp open for an auto-shutter exposure
        self.auto_lamp = False
        #: the realistic stand's physics (RealisticRenderer) instead of the ideal one
        self.realistic = False
        #: serve the first live frame from the renderer's preview tiles (an application
        #: opening on this stand: the image appears at once and refines within a second)
        self.quick_first_frame = False
        #: set when the core stops a sequence: a live frame being rendered is abandoned
        self.sequence_stop = threading.Event()
        self._renderer: Any = None
        self._render_takes_live = False
        self._renderer_lock = threading.Lock()

    def attach(self, device: Any) -> None:
        """Register a device so the others (mostly the camera) can read its state."""
        for attr, cls in (
            ("xy_stage", SimXYStage),
            ("z_stage", SimZStage),
            ("turret", SimTurret),
            ("lamp", SimLamp),
            ("camera", SimCamera),
        ):
            if isinstance(device, cls):
                setattr(self, attr, device)
        device._world = self

    def xy(self) -> tuple[float, float]:
        return self.xy_stage.current_xy() if self.xy_stage else (0.0, 0.0)

    def z(self) -> float:
        return self.z_stage.current_z() if self.z_stage else 0.0

    def objective(self) -> str:
        return self.turret.current_label() if self.turret else "40x"

    def optics_key(self, renderer: Any, label: str) -> str:
        """Make sure the renderer knows ``label``; a relabelled turret (e.g. "20x") gets
        plausible dry optics from the magnification in its name."""
        optics = getattr(renderer, "optics", None)
        if optics is None or label in optics:
            return label
        from hardware.sim.optics import SimOptics

        m = re.search(r"(\d+(?:\.\d+)?)", label)
        mag = float(m.group(1)) if m else 10.0
        na = min(0.95, 0.1 + 0.02 * mag)
        optics[label] = SimOptics(mag, na, "dry", CAMERA_PIXEL_UM / mag)
        return label

    def light_reaches_camera(self) -> bool:
        """Lamp open (or held open by auto-shutter) and no turret rotation under way."""
        if self.turret is not None and self.turret.busy():
            return False
        if self.lamp is None:
            return True
        return self.auto_lamp or self.lamp.get_open()

    def renderer(self) -> Any:
        """The physics renderer, or None while hardware.sim.render is not importable."""
        with self._renderer_lock:
            if self._renderer is None:
                try:
                    from hardware.sim.realistic import RealisticRenderer
                    from hardware.sim.render import SimRenderer
                except ImportError:
                    self._renderer = False
                else:
                    self._renderer = RealisticRenderer() if self.realistic else SimRenderer()
                    self._renderer.quick_first_frame = self.quick_first_frame
                    self._renderer.abort_live = self.sequence_stop
                    params = inspect.signature(self._renderer.render).parameters
                    self._render_takes_live = "live" in params
            return self._renderer or None

    def set_realistic(self, realistic: bool) -> None:
        """Choose the stand's physics; the renderer is rebuilt on the next frame."""
        with self._renderer_lock:
            if bool(realistic) != self.realistic:
                self.realistic = bool(realistic)
                self._renderer = None


# worlds for devices loaded by a plain UniMMCore (keyed by the core's event object)
_WORLDS: weakref.WeakKeyDictionary[Any, SimWorld] = weakref.WeakKeyDictionary()


class _SimPart:
    """Mixin: find the shared world at initialisation if no SimCore attached one."""

    _world: SimWorld | None = None

    def _ensure_world(self) -> SimWorld:
        if self._world is None:
            # every device proxy hands out the same signal, owned by the core's events
            key = getattr(self.core.events.propertyChanged, "instance", None)  # type: ignore[attr-defined]
            try:
                world = _WORLDS.setdefault(key, SimWorld())
            except TypeError:  # no usable key: private world (camera sees a parked stage)
                world = SimWorld()
            world.attach(self)
        assert self._world is not None
        return self._world

    def initialize(self) -> None:
        self._ensure_world()


class _Motion:
    """Straight-line move at constant speed, so position is a function of time."""

    def __init__(self, start: np.ndarray, speed: float) -> None:
        self.start = start.astype(float)
        self.target = self.start.copy()
        self.t0 = 0.0
        self.t1 = 0.0
        self.speed = speed

    def go(self, target: np.ndarray) -> None:
        now = time.monotonic()
        self.start = self.now(now)
        self.target = np.asarray(target, float)
        dist = float(np.max(np.abs(self.target - self.start)))
        self.t0 = now
        self.t1 = now + (dist / self.speed if self.speed > 0 else 0.0)

    def now(self, t: float | None = None) -> np.ndarray:
        t = time.monotonic() if t is None else t
        if t >= self.t1 or self.t1 <= self.t0:
            return self.target.copy()
        f = (t - self.t0) / (self.t1 - self.t0)
        return self.start + f * (self.target - self.start)

    def moving(self) -> bool:
        return time.monotonic() < self.t1

    def halt(self) -> None:
        here = self.now()
        self.start = self.target = here
        self.t1 = self.t0


class _MovingPart(_SimPart):
    """Mixin: a stage whose position follows a :class:`_Motion` (speed, busy, stop)."""

    _motion: _Motion

    @pymm_property(limits=(0.0, 1e6), name="Speed_um_per_s")
    def speed(self) -> float:
        """Travel speed in µm/s; 0 means moves complete instantly (tests, fast simulation)."""
        return self._motion.speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._motion.speed = float(value)

    def busy(self) -> bool:
        return self._motion.moving()

    def stop(self) -> None:
        self._motion.halt()


class SimXYStage(_MovingPart, XYStageDevice):
    """Motorised XY stage with travel limits and an optional finite speed."""

    def __init__(self) -> None:
        super().__init__()
        self._motion = _Motion(np.zeros(2), 0.0)
        self._limits = [-25000.0, 25000.0, -10000.0, 10000.0]
        self._repeat_um = 0.0
        self._error = np.zeros(2)  # true - reported position after the last move
        self._err_rng = np.random.default_rng(2718)

    @pymm_property(limits=(0.0, 100.0), name="Repeatability_um")
    def repeatability_um(self) -> float:
        """RMS error (µm) of where a move really ends; the reported position stays the
        commanded one, as with an open-loop stage (0 = exact)."""
        return self._repeat_um

    @repeatability_um.setter
    def repeatability_um(self, value: float) -> None:
        self._repeat_um = float(value)

    def _limit_prop(i: int, name: str) -> Any:  # noqa: N805 - class-body helper
        def fget(self: SimXYStage) -> float:
            return self._limits[i]

        def fset(self: SimXYStage, value: float) -> None:
            self._limits[i] = float(value)

        ctrl = pymm_property(name=name, property_type=float)(fget)
        ctrl.setter(fset)
        return ctrl

    x_min = _limit_prop(0, "LimitXMin_um")
    x_max = _limit_prop(1, "LimitXMax_um")
    y_min = _limit_prop(2, "LimitYMin_um")
    y_max = _limit_prop(3, "LimitYMax_um")
    del _limit_prop

    def limits(self) -> tuple[float, float, float, float]:
        """Travel limits (xmin, xmax, ymin, ymax) in µm."""
        return tuple(self._limits)  # type: ignore[return-value]

    def current_xy(self) -> tuple[float, float]:
        """Where the stage really is (what the camera sees)."""
        x, y = self._motion.now()
        return float(x), float(y)

    def reported_xy(self) -> tuple[float, float]:
        """Where the stage says it is: the true position less the last move's error."""
        x, y = self._motion.now() - self._error
        return float(x), float(y)

    def set_position_um(self, x: float, y: float) -> None:
        xmin, xmax, ymin, ymax = self._limits
        if not (xmin <= x <= xmax and ymin <= y <= ymax):
            raise ValueError(
                f"XY target ({x:.1f}, {y:.1f}) µm outside travel "
                f"x [{xmin:g}, {xmax:g}], y [{ymin:g}, {ymax:g}] µm"
            )
        # per-axis sigma so the radial RMS error is the repeatability
        err = self._err_rng.normal(0.0, self._repeat_um / np.sqrt(2.0), 2)
        self._error = err
        self._motion.go(np.array([x, y], float) + err)
        # Python stages get no position callback from the core: report it ourselves.
        self.core.events.XYStagePositionChanged.emit(self.get_label(), float(x), float(y))

    def get_position_um(self) -> tuple[float, float]:
        return self.reported_xy()

    def home(self) -> None:
        self.set_position_um(0.0, 0.0)

    def set_origin_x(self) -> None:
        raise NotImplementedError("the simulated stage keeps slide coordinates")

    def set_origin_y(self) -> None:
        raise NotImplementedError("the simulated stage keeps slide coordinates")


class SimZStage(_MovingPart, StageDevice):
    """Focus drive with limits and an optional finite speed."""

    def __init__(self) -> None:
        super().__init__()
        self._motion = _Motion(np.zeros(1), 0.0)
        self._lo, self._hi = -500.0, 500.0

    @pymm_property(name="LimitMin_um")
    def limit_min(self) -> float:
        """Lowest focus position (µm); the safe, retracted position."""
        return self._lo

    @limit_min.setter
    def limit_min(self, value: float) -> None:
        self._lo = float(value)

    @pymm_property(name="LimitMax_um")
    def limit_max(self) -> float:
        """Highest focus position (µm)."""
        return self._hi

    @limit_max.setter
    def limit_max(self, value: float) -> None:
        self._hi = float(value)

    def limits(self) -> tuple[float, float]:
        return self._lo, self._hi

    def current_z(self) -> float:
        return float(self._motion.now()[0])

    def set_position_um(self, val: float) -> None:
        if not self._lo <= val <= self._hi:
            raise ValueError(f"Z target {val:.2f} µm outside [{self._lo:g}, {self._hi:g}] µm")
        self._motion.go(np.array([val], float))
        self.core.events.stagePositionChanged.emit(self.get_label(), float(val))

    def get_position_um(self) -> float:
        return self.current_z()

    def get_focus_direction(self) -> FocusDirection:
        return FocusDirection.TowardSample

    def home(self) -> None:
        self.set_position_um(self._lo)

    def set_origin(self) -> None:
        raise NotImplementedError("the simulated focus keeps slide coordinates")


class SimTurret(_SimPart, StateDevice):
    """Objective turret; rotating it takes ``ChangeTime_ms`` during which no light passes."""

    DEFAULT_LABELS: Mapping[int, str] = {0: "10x", 1: "40x", 2: "100x"}

    def __init__(self) -> None:
        super().__init__(dict(self.DEFAULT_LABELS))
        self._state = 1
        self._change_ms = 0.0
        self._done_at = 0.0

    @pymm_property(limits=(0.0, 60000.0), name="ChangeTime_ms")
    def change_time_ms(self) -> float:
        """How long a turret rotation takes (0 = instant)."""
        return self._change_ms

    @change_time_ms.setter
    def change_time_ms(self, value: float) -> None:
        self._change_ms = float(value)

    def get_state(self) -> int:
        return self._state

    def set_state(self, position: int) -> None:
        position = int(position)
        if position != self._state:
            self._done_at = time.monotonic() + self._change_ms / 1000.0
        self._state = position

    def current_label(self) -> str:
        return str(self._state_to_label.get(self._state, ""))

    def busy(self) -> bool:
        return time.monotonic() < self._done_at


class SimLamp(_SimPart, ShutterDevice):
    """Transmitted-light lamp shutter; frames are dark while it is closed."""

    def __init__(self) -> None:
        super().__init__()
        self._open = False

    def get_open(self) -> bool:
        return self._open

    def set_open(self, open: bool) -> None:
        self._open = bool(open)


class SimCamera(_SimPart, CameraDevice):
    """RGB camera (6.5 µm pixels) that renders the simulated slide under the current optics."""

    def __init__(self) -> None:
        super().__init__()
        self._exposure = 10.0
        self._h, self._w = 1024, 1024
        self._bits = 8
        self._realistic = False
        self._noise = True
        self._seed = 0
        self._rng = np.random.default_rng(self._seed)
        self._snaps = 0
        #: active ROI (x, y, width, height) on the sensor, or None for the full frame
        self._roi: tuple[int, int, int, int] | None = None

    # ---- properties -------------------------------------------------------

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = float(exposure)
        self.core.events.exposureChanged.emit(self.get_label(), self._exposure)

    @pymm_property(limits=(8, 8192), name="SensorWidth")
    def sensor_width(self) -> int:
        """Sensor width in pixels (a new sensor size clears the ROI)."""
        return self._w

    @sensor_width.setter
    def sensor_width(self, value: int) -> None:
        if int(value) != self._w:
            self._roi = None
        self._w = int(value)

    @pymm_property(limits=(8, 8192), name="SensorHeight")
    def sensor_height(self) -> int:
        """Sensor height in pixels."""
        return self._h

    @sensor_height.setter
    def sensor_height(self, value: int) -> None:
        if int(value) != self._h:
            self._roi = None
        self._h = int(value)

    @pymm_property(allowed_values=("8", "12", "16"), name="BitDepth")
    def bit_depth(self) -> str:
        """Significant bits per colour channel: 8 in uint8, 12 or 16 in uint16."""
        return str(self._bits)

    @bit_depth.setter
    def bit_depth(self, value: str) -> None:
        self._bits = int(value)

    def significant_bits(self) -> int:
        """What the core reports as getImageBitDepth (uint16 frames may hold 12 bits)."""
        return self._bits

    @pymm_property(allowed_values=("Ideal", "Realistic"), name="Stand")
    def stand(self) -> str:
        """Physics of the simulated stand: Ideal (incoherent optics, clean RGB camera,
        frames carry the stage position) or Realistic (hardware.sim.realistic)."""
        return "Realistic" if self._realistic else "Ideal"

    @stand.setter
    def stand(self, value: str) -> None:
        self._realistic = str(value) == "Realistic"
        if self._world is not None:
            self._world.set_realistic(self._realistic)

    @pymm_property(allowed_values=("On", "Off"), name="Noise")
    def noise(self) -> str:
        """Shot and read noise on or off (off gives clean, repeatable frames)."""
        return "On" if self._noise else "Off"

    @noise.setter
    def noise(self, value: str) -> None:
        self._noise = str(value) == "On"

    @pymm_property(limits=(0, 2**31 - 1), name="Seed")
    def seed(self) -> int:
        """Seed of the noise generator, for reproducible runs."""
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        self._seed = int(value)
        self._rng = np.random.default_rng(self._seed)

    @pymm_property(is_read_only=True, name="PixelPitch_um")
    def pixel_pitch_um(self) -> float:
        """Physical sensor pixel pitch (µm)."""
        return CAMERA_PIXEL_UM

    # ---- image geometry ---------------------------------------------------

    def shape(self) -> tuple[int, int, int]:
        if self._roi is not None:
            return (self._roi[3], self._roi[2], 3)
        return (self._h, self._w, 3)

    # ---- region of interest (core.setROI / getROI / clearROI) -------------

    def get_roi(self) -> tuple[int, int, int, int]:
        """Current ROI ``(x, y, width, height)``; the full sensor when none is set."""
        return self._roi if self._roi is not None else (0, 0, self._w, self._h)

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        """Hardware-like ROI: only these pixels are rendered (cost scales with the area),
        with exactly the content the full frame has there."""
        x, y, width, height = int(x), int(y), int(width), int(height)
        if x < 0 or y < 0 or width <= 0 or height <= 0:
            raise ValueError(f"invalid ROI ({x}, {y}, {width}, {height})")
        if x + width > self._w or y + height > self._h:
            raise ValueError(
                f"ROI ({x}, {y}, {width}, {height}) exceeds the {self._w}x{self._h} sensor")
        full = (x, y, width, height) == (0, 0, self._w, self._h)
        self._roi = None if full else (x, y, width, height)

    def clear_roi(self) -> None:
        """Back to the full sensor."""
        self._roi = None

    def dtype(self) -> Any:
        return np.uint16 if self._bits > 8 else np.uint8

    # ---- acquisition ------------------------------------------------------

    def initialize(self) -> None:
        super().initialize()
        self._ensure_world().set_realistic(self._realistic)

    def _fill(self, buf: np.ndarray, live: bool) -> dict[str, Any]:
        world = self._ensure_world()
        x, y = world.xy()
        z = world.z()
        objective = world.objective()
        lamp = world.light_reaches_camera()
        renderer = world.renderer()
        if renderer is not None:
            extra: dict[str, Any] = {"live": live} if world._render_takes_live else {}
            if self._roi is not None:
                extra["roi"] = self._roi
            img = renderer.render(
                x, y, z, world.optics_key(renderer, objective), shape=(self._h, self._w),
                exposure_ms=self._exposure, bit_depth=self._bits, noise=self._noise,
                rng=self._rng, lamp_on=lamp, **extra,
            )
            buf[:] = img.reshape(buf.shape)
        else:  # renderer not available yet: flat grey proportional to exposure
            full = (1 << self._bits) - 1
            buf[:] = int(full * 0.5 * min(1.0, self._exposure / 10.0)) if lamp else 0
        self._snaps += 1
        if self._realistic:  # a real camera knows nothing of the stage
            return {}
        return {
            "SimX_um": f"{x:.4f}",
            "SimY_um": f"{y:.4f}",
            "SimZ_um": f"{z:.4f}",
            "SimObjective": objective,
            "SimLampOn": str(int(lamp)),
        }

    def start_sequence(
        self,
        n: int | None,
        get_buffer: Callable[[Sequence[int], Any], np.ndarray],
    ) -> Iterator[Mapping]:
        """Render frames, paced to the exposure time so live view does not spin the CPU.

        Stopping the sequence (``SimWorld.sequence_stop``) abandons a live frame being
        rendered between two tiles or within a tile's specimen synthesis, as a camera
        aborts its exposure: whoever next uses the camera waits for a few nuclei, not
        for a whole new field."""
        from hardware.sim.slide import RenderAborted, abandon_when

        shape, dtype = self.shape(), self.dtype()
        live = n is None or n > 1
        count = 0
        limit = n if n is not None else 2**63
        world = self._ensure_world()
        world.sequence_stop.clear()
        while count < limit:
            t0 = time.perf_counter()
            buf = get_buffer(shape, dtype)
            try:
                with abandon_when(world.sequence_stop if live else None):
                    meta = self._fill(buf, live)
            except RenderAborted:
                return
            if live:
                remaining = self._exposure / 1000.0 - (time.perf_counter() - t0)
                if remaining > 0:
                    time.sleep(remaining)
                if world.sequence_stop.is_set():
                    # stopped during this exposure (the stop does not wait for the camera
                    # thread): the frame is dropped, as a camera aborts it, never delivered
                    # after the stop returned (a recycled still frame takes no time to make)
                    return
            yield meta
            count += 1
