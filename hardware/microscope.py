"""The microscope facade: the one object the rest of ThinkScope uses to drive a stand.

It speaks the pymmcore-plus ``CMMCorePlus`` API to whatever core it is given (simulated,
``.cfg``, or a pycromanager bridge) and adds what a bare core lacks: objective profiles,
the stand's safety rules, RGB normalisation and a latest-frame live stream.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from hardware.errors import MicroscopeError, SafetyError
from hardware.profiles import ObjectiveProfile, load_profiles, profile_from_label

__all__ = ["Frame", "Microscope", "MicroscopeEvents", "normalize_rgb"]

log = logging.getLogger(__name__)

_STATE_DEVICE = 4  # MM::StateDevice (pymmcore_plus.DeviceType.StateDevice)
_INF = math.inf
#: cameras that do not number their images: new frames after a move that may still show
#: it (the newest when the move ended, and the one exposing then)
_SETTLE_FRESH = 2
#: a position read that differs from the still frames' place by less than this is
#: encoder jitter, not a move (µm; xy in pixels of the current objective)
_JITTER_XY_PX = 0.05
_JITTER_Z_UM = 0.02
#: how long after a facade move a stage's report of a point on its way is taken for a
#: late mid-move report of that move (s)
_LATE_REPORT_S = 2.0


@dataclass(frozen=True)
class Frame:
    """One camera frame plus where and how it was taken."""

    image: np.ndarray
    number: int  #: increases by one per new frame of this facade; repeats keep their number
    timestamp: float  #: time.time() when the facade received the frame
    pixel_size_um: float
    objective: str
    xy: tuple[float, float]
    z: float
    bit_depth: int = 8  #: significant bits per channel, from the core (getImageBitDepth)
    #: the stage, focus or turret moved while this frame may have been exposing, so its
    #: picture belongs to no one place (``xy``/``z``/``objective`` are read on arrival).
    #: A still frame's place is the one valid while it was exposed.
    moving: bool = False


class MicroscopeEvents(SignalGroup):
    """Position/state changes, emitted from whatever thread made them."""

    objective_changed = Signal(str)
    xy_changed = Signal(float, float)
    z_changed = Signal(float)
    exposure_changed = Signal(float)


def normalize_rgb(img: np.ndarray) -> np.ndarray:
    """Any camera image as (H, W, 3) RGB: BGRA drops alpha and swaps, grey is replicated."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:  # Micro-Manager RGB32 is BGRA
        return np.ascontiguousarray(img[..., [2, 1, 0]])
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    raise MicroscopeError(f"Unsupported camera image shape {img.shape}")


def _md_get(md: Any, key: str) -> str | None:
    with contextlib.suppress(Exception):
        if isinstance(md, Mapping) or hasattr(md, "get"):
            val = md.get(key)
            return None if val is None else str(val)
    return None


class Microscope:
    """Safe, profile-aware access to one microscope (see docs/CONTRACTS.md)."""

    def __init__(
        self,
        core: Any,
        source: str,
        profiles: Mapping[str, ObjectiveProfile] | None = None,
        *,
        turret: str | None = None,
        stage_limits: tuple[float, float, float, float] | None = None,
        z_limits: tuple[float, float] | None = None,
        safe_z: float | None = None,
        owns_core: bool = True,
        move_timeout_s: float = 30.0,
        preset_labels: Iterable[str] = (),
    ) -> None:
        self.core = core
        self.source = source
        self.events = MicroscopeEvents()
        self._owns_core = owns_core
        self._closed = False
        self._lock = threading.RLock()
        self._quiet = 0  # >0 while the facade itself moves things: relays stay silent
        self._timeout = move_timeout_s
        self._turret = turret if turret is not None else self._find_turret()
        self._xy_dev = self._safe_call(core.getXYStageDevice, "")
        self._z_dev = self._safe_call(core.getFocusDevice, "")
        self._stage_limits = stage_limits or self._device_xy_limits()
        self._z_limits = z_limits or self._device_z_limits()
        self._safe_z = safe_z
        self._profiles: dict[str, ObjectiveProfile] = dict(
            profiles if profiles is not None else load_profiles()
        )
        self._adopt_preset_pixel_sizes(set(preset_labels))
        self._add_missing_profiles()
        if owns_core:  # calibrated pixel sizes become the core's (never pushed into a
            self._push_pixel_sizes(self._profiles)  # running Micro-Manager we only borrow)
        self._live = False
        self._frame_lock = threading.Lock()
        self._frame: Frame | None = None
        self._frame_no = 0
        #: (facade frame number, the camera's ImageNumber of that frame or None)
        self._frame_source_no: tuple[int, int | None] = (0, None)
        self._last_image_key: tuple[Any, ...] | None = None
        self._last_raw: Any = None
        self._roi_ok: bool | None = None
        # Which place each live frame shows (see _place_of). Moves made by the facade are
        # bracketed by _moving(); moves made on the core are seen in its events or as a
        # change of the position read from it.
        self._motion_lock = threading.Lock()
        self._moves_open = 0
        #: the first camera ImageNumber whose exposure began after the last move ended
        self._settled_from = -1
        #: cameras without ImageNumber: new frames fetched since the last move ended
        self._fresh_since_move = _SETTLE_FRESH
        #: the last move's end has no camera number: count frames after it instead
        self._count_settle = False
        #: a move seen in the core's events whose end is not known yet
        self._external_move = False
        #: counts the moves seen in the core's events: a frame that read the place after
        #: one must not clear the notice of another that came meanwhile
        self._external_seen = 0
        #: (start, end, monotonic end time) of the facade's last move: a stage that
        #: reports its way from a thread of its own (Micro-Manager's DemoXYStage, most
        #: motorised stages) may deliver a mid-move report after the move has ended
        self._last_path: tuple[tuple[tuple[float, float], float, str],
                               tuple[tuple[float, float], float, str], float] | None = None
        #: stage jitter tolerance (µm), from the pixel size when the last frame arrived
        self._tol_um = 0.0
        #: (xy, z, objective) where the facade's last move ended
        self._arrived: tuple[tuple[float, float], float, str] | None = None
        #: (xy, z, objective) of the still frames since the last move (None: not read yet)
        self._place: tuple[tuple[float, float], float, str] | None = None
        self._connect_core_events()

    # ------------------------------------------------------------------ discovery

    @staticmethod
    def _safe_call(fn: Any, default: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            return default

    def _find_turret(self) -> str:
        """The state device behind the "Objective" group, else behind the pixel-size presets."""
        core = self.core
        candidates: list[str] = []
        groups = self._safe_call(core.getAvailableConfigGroups, ())
        for group in groups:
            if group.lower() in ("objective", "objectives"):
                for preset in self._safe_call(core.getAvailableConfigs, (), group):
                    data = self._safe_call(core.getConfigData, [], group, preset)
                    candidates += [s[0] for s in data]
        for res_id in self._safe_call(core.getAvailablePixelSizeConfigs, ()):
            data = self._safe_call(core.getPixelSizeConfigData, [], res_id)
            candidates += [s[0] for s in data]
        for dev in candidates:
            if int(self._safe_call(core.getDeviceType, -1, dev)) == _STATE_DEVICE:
                return dev
        return ""

    def _prop_float(self, dev: str, prop: str) -> float | None:
        if not dev:
            return None
        with contextlib.suppress(Exception):
            if self.core.hasProperty(dev, prop):
                return float(self.core.getProperty(dev, prop))
        return None

    def _device_xy_limits(self) -> tuple[float, float, float, float]:
        names = ("LimitXMin_um", "LimitXMax_um", "LimitYMin_um", "LimitYMax_um")
        vals = [self._prop_float(self._xy_dev, n) for n in names]
        defaults = (-_INF, _INF, -_INF, _INF)
        return tuple(d if v is None else v for v, d in zip(vals, defaults, strict=True))  # type: ignore[return-value]

    def _device_z_limits(self) -> tuple[float, float]:
        lo = self._prop_float(self._z_dev, "LimitMin_um")
        hi = self._prop_float(self._z_dev, "LimitMax_um")
        return (-_INF if lo is None else lo, _INF if hi is None else hi)

    def _pixel_config_for(self, label: str) -> str:
        if not self._turret:
            return ""
        for res_id in self._safe_call(self.core.getAvailablePixelSizeConfigs, ()):
            for dev, prop, value in self._safe_call(
                self.core.getPixelSizeConfigData, [], res_id
            ):
                if dev == self._turret and prop == "Label" and value == label:
                    return res_id
        return ""

    def _add_missing_profiles(self) -> None:
        """Turret labels without a profile get one parsed from the label and the core's
        pixel-size preset (magnification, NA and immersion as written on the objective)."""
        for label in self.objectives():
            if label in self._profiles:
                continue
            res_id = self._pixel_config_for(label)
            ps = float(self._safe_call(self.core.getPixelSizeUmByID, 0.0, res_id)) if res_id else 0
            self._profiles[label] = profile_from_label(label, ps if ps > 0 else None)

    def _adopt_preset_pixel_sizes(self, labels: set[str]) -> None:
        """Shipped default profiles ("40x") describe the simulator's camera: on a real stand
        the configuration's pixel-size preset for such a label is the truth."""
        for label in (lb for lb in self.objectives() if lb in labels):
            res_id = self._pixel_config_for(label)
            prof = self._profiles.get(label)
            ps = float(self._safe_call(self.core.getPixelSizeUmByID, 0.0, res_id)) if res_id else 0
            if prof is not None and ps > 0 and not prof.retired:
                self._profiles[label] = prof.model_copy(update={"pixel_size_um": ps})

    def _push_pixel_sizes(self, profiles: Mapping[str, ObjectiveProfile]) -> None:
        for label, prof in profiles.items():
            res_id = self._pixel_config_for(label)
            if res_id:
                with contextlib.suppress(Exception):
                    self.core.setPixelSizeUm(res_id, prof.pixel_size_um)

    # ------------------------------------------------------------------ events

    def _connect_core_events(self) -> None:
        ev = getattr(self.core, "events", None)
        if ev is None:
            return
        with contextlib.suppress(Exception):
            ev.XYStagePositionChanged.connect(self._on_core_xy)
            ev.stagePositionChanged.connect(self._on_core_z)
            ev.exposureChanged.connect(self._on_core_exposure)
            ev.propertyChanged.connect(self._on_core_property)

    def _disconnect_core_events(self) -> None:
        ev = getattr(self.core, "events", None)
        if ev is None:
            return
        for sig, cb in (
            ("XYStagePositionChanged", self._on_core_xy),
            ("stagePositionChanged", self._on_core_z),
            ("exposureChanged", self._on_core_exposure),
            ("propertyChanged", self._on_core_property),
        ):
            with contextlib.suppress(Exception):
                getattr(ev, sig).disconnect(cb)

    def _on_core_xy(self, dev: str, x: float, y: float) -> None:
        if not self._quiet and dev == self._xy_dev:
            self._note_external_move(xy=(float(x), float(y)))
            self.events.xy_changed.emit(float(x), float(y))

    def _on_core_z(self, dev: str, z: float) -> None:
        if not self._quiet and dev == self._z_dev:
            self._note_external_move(z=float(z))
            self.events.z_changed.emit(float(z))

    def _on_core_exposure(self, dev: str, ms: float) -> None:
        if not self._quiet:
            self.events.exposure_changed.emit(float(ms))

    def _on_core_property(self, dev: str, prop: str, value: Any) -> None:
        if not self._quiet and dev == self._turret and prop == "Label" and value:
            self._note_external_move(objective=str(value))
            self.events.objective_changed.emit(str(value))

    @contextlib.contextmanager
    def _acting(self) -> Any:
        with self._lock:
            self._check_open()
            self._quiet += 1
            try:
                yield
            finally:
                self._quiet -= 1

    @contextlib.contextmanager
    def _moving(self) -> Iterator[None]:
        """Brackets a move made by the facade: live frames that arrive meanwhile, and
        those that may have been exposing when it ended, are marked ``moving``."""
        try:
            start: tuple[tuple[float, float], float, str] | None = (
                self.xy(), self.z(), self.objective())
        except Exception:  # noqa: BLE001 - the move itself reports a failing device
            start = None
        with self._motion_lock:
            self._moves_open += 1
            self._place = None
        try:
            yield
        finally:
            # the camera's newest image now: the next one may have been exposing during
            # the move, the one after it began once the move was over
            newest = self._newest_image_number() if self.is_live() else None
            arrived: tuple[tuple[float, float], float, str] | None
            try:   # where the move left the stand: its late position events are no move
                arrived = (self.xy(), self.z(), self.objective())
            except Exception:  # noqa: BLE001 - a failed move raises from the body
                arrived = None
            with self._motion_lock:
                self._moves_open -= 1
                self._arrived = arrived
                if not self._moves_open:   # frames begun after the move show this place
                    self._place = arrived
                if newest is not None:
                    self._settled_from = max(self._settled_from, newest + 2)
                self._count_settle = newest is None   # no number: count frames instead
                self._fresh_since_move = 0
                self._last_path = (None if start is None or arrived is None
                                   else (start, arrived, time.monotonic()))

    def _note_external_move(self, xy: tuple[float, float] | None = None,
                            z: float | None = None, objective: str | None = None) -> None:
        """A move made on the core directly (an MDA, another program): frames are marked
        ``moving`` until the devices are idle again (checked as frames arrive). An event
        that names the place the still frames are at already (a stage that reports its
        position while it stands still) is no move. Runs in the core's callback, which
        may hold a device lock: it must not call the core."""
        tol = self._tol_um
        with self._motion_lock:
            place = self._place if self._place is not None else self._arrived
            if place is not None:
                here = (xy if xy is not None else place[0],
                        z if z is not None else place[1],
                        objective if objective is not None else place[2])
                if self._same_place(place, here, tol) or self._late_report(here, tol):
                    return
            self._external_move = True
            self._external_seen += 1
            self._place = self._arrived = None

    def _late_report(self, here: tuple[tuple[float, float], float, str], tol: float) -> bool:
        """A report of a point inside the facade's last move, shortly after it ended: the
        stage's own late mid-move report (under _motion_lock). Its ends are no such
        points: a move back to either is a real move (a report computed as the move began
        is taken for one, which only marks a few frames more). A real move to an inside
        point still shows in the position read of the next frame (see _place_of)."""
        if self._last_path is None or self._moves_open:
            return False
        a, b, ended = self._last_path
        if (time.monotonic() - ended > _LATE_REPORT_S or here[2] != b[2]
                or self._same_place(a, here, tol) or self._same_place(b, here, tol)):
            return False
        z_lo, z_hi = sorted((a[1], b[1]))
        if not z_lo - _JITTER_Z_UM <= here[1] <= z_hi + _JITTER_Z_UM:
            return False
        (ax, ay), (bx, by), (px, py) = a[0], b[0], here[0]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((px - ax) * dx + (py - ay) * dy)
                                                  / length2))
        late = math.hypot(ax + t * dx - px, ay + t * dy - py) <= max(tol, 1e-3)
        if late:
            log.debug("a late mid-move report of the last move, no move: %s", here)
        return late

    def _devices_busy(self) -> bool:
        return any(self._safe_call(self.core.deviceBusy, False, dev)
                   for dev in (self._xy_dev, self._z_dev, self._turret) if dev)

    def _place_of(self, number: int | None, here: tuple[tuple[float, float], float, str],
                  tol: float = 0.0) -> tuple[tuple[tuple[float, float], float, str], bool]:
        """(place, moving) of a new live frame with camera ImageNumber ``number``;
        ``here`` is the position read from the core after the frame arrived; ``tol`` the
        stage jitter (µm) below which a read is no move.

        A frame shows where the stand was while it was exposed, which a read after it
        arrived does not tell: the frame exposing when a move ended arrives after it. With
        N the camera's newest image when a move ended, N+1 may have been exposing during
        the move and N+2 began after it; a camera without numbers gets one frame more of
        margin (:data:`_SETTLE_FRESH`). The place of still frames is a position read
        before they began: where a facade move ended, the read at start_live, or after a
        move made on the core, a read once the devices are idle (the frames from 3 on after
        it began later). A read that differs from it by more than jitter is a move no event
        announced: the place is read again the same way."""
        with self._motion_lock:
            self._fresh_since_move += 1
            if self._moves_open:
                return here, True
            external = self._external_move or self._place is None
        if external:
            seen = self._external_seen
            if self._devices_busy():
                return here, True
            after = (self.xy(), self.z(), self.objective())   # read once all is idle
            newest = self._newest_image_number()
            with self._motion_lock:
                self._moved_unseen(number, newest)
                if seen == self._external_seen and not self._moves_open:
                    self._external_move = False
                    self._place, self._arrived = after, None
                # else: another move began while the place was read; the next frame reads
                # it again (taking this read would stamp frames of the new move as still)
            return here, True
        with self._motion_lock:
            settling = (number is not None and self._settled_from > number) or (
                (number is None or self._count_settle)
                and self._fresh_since_move <= _SETTLE_FRESH)
            if settling:
                return here, True
            place = self._place
            if place is None:
                return here, True
            if self._same_place(place, here, tol):
                return place, False
        newest = self._newest_image_number()
        with self._motion_lock:
            self._moved_unseen(number, newest)
        return here, True

    def _moved_unseen(self, number: int | None, newest: int | None = None) -> None:
        """A move ended before frame ``number`` was looked at (under _motion_lock): frames
        up to two after it may have begun before it ended. ``newest`` is the camera's
        newest image once the move was seen: the move may have come after frame ``number``
        was fetched, while the camera went on (a loaded host), so the frame after the
        newest may have begun before it ended too."""
        self._place = None
        if number is not None:
            self._settled_from = max(self._settled_from, number + 3)
        if newest is not None:
            self._settled_from = max(self._settled_from, newest + 2)
        self._count_settle = number is None or self._count_settle
        self._fresh_since_move = -1

    @staticmethod
    def _same_place(a: tuple[tuple[float, float], float, str],
                    b: tuple[tuple[float, float], float, str], tol: float) -> bool:
        return (a[2] == b[2] and abs(a[1] - b[1]) <= _JITTER_Z_UM
                and abs(a[0][0] - b[0][0]) <= tol and abs(a[0][1] - b[0][1]) <= tol)

    def _check_open(self) -> None:
        if self._closed:
            raise MicroscopeError(f"Microscope {self.source!r} is closed")

    def _wait(self, dev: str) -> None:
        if not dev:
            return
        deadline = time.monotonic() + self._timeout
        while self._safe_call(self.core.deviceBusy, False, dev):
            if time.monotonic() > deadline:
                raise MicroscopeError(f"{dev} still moving after {self._timeout:.0f} s")
            time.sleep(0.005)

    # ------------------------------------------------------------------ objectives

    def objectives(self) -> list[str]:
        """Turret labels in turret order (the current profile's label if there is no turret)."""
        if not self._turret:
            return [next(iter(self._profiles))] if getattr(self, "_profiles", None) else []
        return [str(s) for s in self.core.getStateLabels(self._turret)]

    def objective(self) -> str:
        """Label of the objective in the light path."""
        if not self._turret:
            return self.objectives()[0]
        return str(self.core.getStateLabel(self._turret))

    @property
    def profiles(self) -> dict[str, ObjectiveProfile]:
        """All known profiles by label (a copy)."""
        return dict(self._profiles)

    def profile(self, label: str | None = None) -> ObjectiveProfile:
        """The profile of ``label``, or of the current objective."""
        label = self.objective() if label is None else label
        try:
            return self._profiles[label]
        except KeyError:
            raise MicroscopeError(
                f"No profile for objective {label!r}; known: {sorted(self._profiles)}"
            ) from None

    def set_profiles(self, profiles: Mapping[str, ObjectiveProfile]) -> None:
        """Adopt edited/calibrated profiles and push their pixel sizes into the core."""
        with self._lock:
            self._profiles.update(profiles)
            self._push_pixel_sizes(profiles)

    def set_objective(
        self, label: str, *, confirm_oil_to_dry: bool = False, apply_offsets: bool = True
    ) -> None:
        """Swap objectives the way an operator would: focus away, rotate, refocus.

        Z goes to the safe position before the turret moves (a long objective must not
        hit the slide), then returns to the previous focus plus the calibrated parfocal
        difference; the stage moves by the parcentric difference so the same specimen
        point stays centred.  Leaving oil for a dry objective needs ``confirm_oil_to_dry``
        because the dry front lens would dip into the oil.
        """
        with self._acting():
            if label not in self.objectives():
                raise MicroscopeError(
                    f"Objective {label!r} is not in the turret; available: {self.objectives()}"
                )
            current = self.objective()
            if label == current:
                return
            if not self._turret:
                raise MicroscopeError("This microscope has no objective turret")
            src, dst = self.profile(current), self.profile(label)
            if src.immersion == "oil" and dst.immersion == "dry" and not confirm_oil_to_dry:
                raise SafetyError(
                    f"Refusing to go from oil objective {current!r} back to dry objective "
                    f"{label!r}: clean the oil first and confirm (confirm_oil_to_dry=True)"
                )
            z0 = self.z()
            x0, y0 = self.xy()
            if apply_offsets:
                z1 = z0 + (dst.parfocal_z_um - src.parfocal_z_um)
                # specimen point seen at the centre = stage + offset: keep it constant
                x1 = x0 - (dst.offset_xy_um[0] - src.offset_xy_um[0])
                y1 = y0 - (dst.offset_xy_um[1] - src.offset_xy_um[1])
            else:
                z1, x1, y1 = z0, x0, y0
            self._check_z(z1)
            self._check_xy(x1, y1)
            self.set_z(self.safe_z())
            with self._moving():
                self.core.setStateLabel(self._turret, label)
                self._wait(self._turret)
            self.events.objective_changed.emit(label)
            if (x1, y1) != (x0, y0):
                self.set_xy(x1, y1)
            self.set_z(z1)

    def safe_z(self) -> float:
        """Where focus goes before a turret move.

        The stand's stored setting (``main.py stand --safe-z``), else the end of the focus
        travel that lies away from the specimen (the focus drive's limits and direction),
        else a SafetyError that says how to set it.
        """
        if self._safe_z is not None:
            return self._safe_z
        lo, hi = self._z_limits
        try:
            direction = int(self.core.getFocusDirection(self._z_dev)) if self._z_dev else 0
        except Exception:  # noqa: BLE001 - cores/bridges without it: direction unknown
            direction = 0
        away = hi if direction < 0 else lo  # +1: positive Z moves towards the specimen
        if math.isfinite(away):
            return away
        raise SafetyError(
            f"No safe focus position is known for an objective change on {self.source!r}: "
            "the configuration states no focus limits. Set it once, as the Z (µm) where "
            "every objective clears the slide: `python main.py"
            f"{self._source_option()} stand --safe-z Z` (or `stand --z-limits ZMIN,ZMAX`), "
            "or in the GUI's Objectives panel under 'Stand settings'."
        )

    def _source_option(self) -> str:
        if self.source.startswith("pycromanager"):
            port = self.source.partition(":")[2]
            return f" --pycromanager {port}" if port else " --pycromanager"
        if self.source in ("sim", ""):
            return ""
        return f" --config {self.source!r}" if " " in self.source else f" --config {self.source}"

    def stand_settings(self) -> dict[str, Any]:
        """The safety settings in force: stage_limits, z_limits and safe_z (None if unknown)."""
        try:
            safe: float | None = self.safe_z()
        except SafetyError:
            safe = None
        return {"stage_limits": self._stage_limits, "z_limits": self._z_limits, "safe_z": safe}

    def set_stand_settings(
        self,
        *,
        stage_limits: tuple[float, float, float, float] | None = None,
        z_limits: tuple[float, float] | None = None,
        safe_z: float | None = None,
    ) -> None:
        """Adopt limits / safe focus now (what ``main.py stand`` stores for later sessions)."""
        with self._lock:
            if stage_limits is not None:
                xmin, xmax, ymin, ymax = (float(v) for v in stage_limits)
                if not (xmin < xmax and ymin < ymax):
                    raise MicroscopeError(f"XY limits must be xmin<xmax, ymin<ymax: {stage_limits}")
                self._stage_limits = (xmin, xmax, ymin, ymax)
            if z_limits is not None:
                zlo, zhi = (float(v) for v in z_limits)
                if not zlo < zhi:
                    raise MicroscopeError(f"Z limits must be (zmin<zmax): {z_limits}")
                self._z_limits = (zlo, zhi)
            if safe_z is not None:
                self._check_z(float(safe_z))
                self._safe_z = float(safe_z)

    def limits_warning(self) -> str | None:
        """A sentence for the operator when the stand has no XY or Z limits, else None.

        Why: without limits nothing stops a typo from driving the stage into its end stops
        or the objective into the slide; the user should know and set them once.
        """
        missing = []
        if not all(math.isfinite(v) for v in self._stage_limits):
            missing.append("XY stage limits (stand --xy-limits XMIN,XMAX,YMIN,YMAX)")
        if not all(math.isfinite(v) for v in self._z_limits):
            missing.append("focus limits (stand --z-limits ZMIN,ZMAX)")
        if not missing:
            return None
        return (f"{self.source}: no " + " and no ".join(missing) + " are known, so moves are "
                f"not bounded; set them once with `python main.py{self._source_option()} "
                "stand ...` or in the Objectives panel.")

    # ------------------------------------------------------------------ stage

    def stage_limits(self) -> tuple[float, float, float, float]:
        """XY travel limits (xmin, xmax, ymin, ymax) in µm."""
        return self._stage_limits

    def _check_xy(self, x: float, y: float) -> None:
        xmin, xmax, ymin, ymax = self._stage_limits
        if not (math.isfinite(x) and math.isfinite(y)):
            raise SafetyError(f"Stage target ({x}, {y}) µm is not a finite position")
        if not (xmin <= x <= xmax and ymin <= y <= ymax):
            raise SafetyError(
                f"Stage target ({x:.1f}, {y:.1f}) µm is outside the stage limits "
                f"x [{xmin:g}, {xmax:g}] µm, y [{ymin:g}, {ymax:g}] µm"
            )

    def xy(self) -> tuple[float, float]:
        """Stage position in µm."""
        x, y = self.core.getXYPosition()
        return float(x), float(y)

    def set_xy(self, x: float, y: float) -> None:
        """Move the stage and wait for it; refuses targets outside the limits."""
        with self._acting():
            x, y = float(x), float(y)
            self._check_xy(x, y)
            try:
                with self._moving():
                    self.core.setXYPosition(x, y)
                    self._wait(self._xy_dev)
            except MicroscopeError:
                raise
            except Exception as e:
                raise MicroscopeError(f"Stage move to ({x:.1f}, {y:.1f}) µm failed: {e}") from e
            self.events.xy_changed.emit(x, y)

    def move_xy_by(self, dx: float, dy: float) -> None:
        """Relative stage move (same limits)."""
        with self._lock:
            x, y = self.xy()
            self.set_xy(x + dx, y + dy)

    def z_limits(self) -> tuple[float, float]:
        """Focus travel (lo, hi) in µm."""
        return self._z_limits

    def _check_z(self, z: float) -> None:
        lo, hi = self._z_limits
        if not (math.isfinite(z) and lo <= z <= hi):
            raise SafetyError(
                f"Focus target {z:.2f} µm is outside the Z limits [{lo:g}, {hi:g}] µm"
            )

    def z(self) -> float:
        """Focus position in µm."""
        return float(self.core.getPosition())

    def set_z(self, z: float) -> None:
        """Move focus and wait for it; refuses targets outside the limits."""
        with self._acting():
            z = float(z)
            self._check_z(z)
            try:
                with self._moving():
                    self.core.setPosition(z)
                    self._wait(self._z_dev)
            except MicroscopeError:
                raise
            except Exception as e:
                raise MicroscopeError(f"Focus move to {z:.2f} µm failed: {e}") from e
            self.events.z_changed.emit(z)

    # ------------------------------------------------------------------ camera

    def exposure(self) -> float:
        """Exposure in ms."""
        return float(self.core.getExposure())

    def set_exposure(self, ms: float) -> None:
        """Set exposure in ms (also changes the live frame rate of the simulator)."""
        with self._acting():
            if not ms > 0:
                raise MicroscopeError(f"Exposure must be positive, got {ms} ms")
            self.core.setExposure(float(ms))
            self.events.exposure_changed.emit(float(ms))

    def pixel_size_um(self) -> float:
        """Sample-plane pixel size now, from the core (binning included).

        The calibrated profiles are pushed into the core's pixel-size presets, so this is
        the calibration; the current profile answers only when the core knows none.
        """
        try:
            ps = float(self.core.getPixelSizeUm(True))
        except Exception:  # noqa: BLE001 - no pixel-size preset matches: ask the profile
            ps = 0.0
        if ps > 0:
            return ps
        with contextlib.suppress(MicroscopeError):
            return self.profile().pixel_size_um
        return 0.0

    def image_shape(self) -> tuple[int, int]:
        """(height, width) of camera frames."""
        return int(self.core.getImageHeight()), int(self.core.getImageWidth())

    def roi(self) -> tuple[int, int, int, int]:
        """Camera region of interest ``(x, y, width, height)``; the full sensor when none."""
        x, y, w, h = (int(v) for v in self.core.getROI())
        return x, y, w, h

    def set_roi(self, x: int, y: int, w: int, h: int) -> None:
        """Read out only this sensor region (snaps and live frames get its shape).

        Why: autofocus needs only the centre, and on real cameras (and the simulator) a
        smaller readout is faster. Stops nothing: call it while not live.
        """
        with self._acting():
            try:
                self.core.setROI(int(x), int(y), int(w), int(h))
            except Exception as e:
                raise MicroscopeError(f"Camera ROI ({x}, {y}, {w}, {h}) refused: {e}") from e

    def clear_roi(self) -> None:
        """Back to the full sensor."""
        with self._acting():
            self.core.clearROI()

    def supports_roi(self) -> bool:
        """Whether the camera takes a hardware ROI (probed once with a central half-frame)."""
        if self._roi_ok is None:
            with self._lock:
                try:
                    prev = self.roi()
                    x, y, w, h = prev
                    self.core.setROI(x + w // 4, y + h // 4, w // 2, h // 2)
                    ok = self.roi()[2:] == (w // 2, h // 2) and self.image_shape() == (h // 2,
                                                                                       w // 2)
                    self._restore_roi(prev)
                    self._roi_ok = ok
                except Exception:  # noqa: BLE001 - a camera without ROI support raises here
                    self._roi_ok = False
        return self._roi_ok

    def _restore_roi(self, prev: tuple[int, int, int, int]) -> None:
        self.core.clearROI()
        if self.roi() != prev:
            self.core.setROI(*prev)

    @contextlib.contextmanager
    def roi_region(self, fraction: float) -> Iterator[tuple[int, int, int, int]]:
        """Central ROI of ``fraction`` x the current frame's sides for the ``with`` body;
        yields it as ``(x, y, w, h)`` and restores the previous ROI afterwards, also on
        errors.

        The region is the one ``focus_metric`` crops (``max(8, int(side * fraction))``,
        offset ``(side - size) // 2``), so metrics on ROI frames match cropped full frames.
        Not while live (cameras refuse ROI changes during a sequence).
        """
        if self.is_live():
            raise MicroscopeError("Stop live view before setting a camera ROI")
        prev = self.roi()
        x, y, w, h = prev
        rw, rh = min(w, max(8, int(w * fraction))), min(h, max(8, int(h * fraction)))
        region = (x + (w - rw) // 2, y + (h - rh) // 2, rw, rh)
        if region == prev:
            yield prev
            return
        self.set_roi(*region)
        try:
            if self.roi() != region:
                raise MicroscopeError(f"Camera did not take the ROI {region}")
            yield region
        finally:
            with self._lock:
                self._restore_roi(prev)

    def bit_depth(self) -> int:
        """Bits per colour channel of camera frames."""
        return int(self.core.getImageBitDepth())

    def snap(self) -> np.ndarray:
        """One (H, W, 3) RGB frame; while live, the next fresh frame of the stream."""
        self._check_open()
        if self.is_live():
            return self._next_live_image()
        with self._lock:
            try:
                self.core.snapImage()
                return normalize_rgb(self.core.getImage()).copy()
            except Exception as e:
                raise MicroscopeError(f"Snap failed: {e}") from e

    def _next_live_image(self) -> np.ndarray:
        """The first live frame exposed where the stand is now.

        A frame already in flight when focus or stage moved shows the old position, and an
        autofocus fed such frames converges on the wrong plane. Moves have finished when
        this is called. The camera numbers its images (``ImageNumber``): with N the newest
        image now, N+1 may have been exposing during the move, N+2 started after it. A
        camera without numbers gets one frame more of margin.
        """
        newest = self._newest_image_number()
        start = self._frame.number if self._frame else 0
        fresh = 0
        timeout_s = max(5.0, 6 * self.exposure() / 1000.0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            frame = self.latest_frame()
            if frame is not None and frame.number > start:
                start, fresh = frame.number, fresh + 1
                number, source_no = self._frame_source_no
                if newest is not None and number == frame.number and source_no is not None:
                    if source_no >= newest + 2:
                        return frame.image
                elif fresh >= 3:
                    return frame.image
            time.sleep(0.002)
        raise MicroscopeError("Live stream delivered no frame at the current position within "
                              f"{timeout_s:.0f} s")

    def _newest_image_number(self) -> int | None:
        """The camera's number of the newest image in the buffer; None when it cannot be
        known: callers then count frames instead. An empty buffer is no proof that none
        was taken: a circular buffer that wraps evicts every slot while the next frame is
        being written (the number of the last frame fetched would be too low)."""
        try:
            if not self.core.getRemainingImageCount():
                return None
            _img, md = self.core.getLastImageAndMD()
        except Exception:  # noqa: BLE001 - empty buffer or a bridge without metadata
            return None
        number = _md_get(md, "ImageNumber")
        try:
            return int(number) if number is not None else None
        except ValueError:
            return None

    def start_live(self) -> None:
        """Start continuous acquisition; read it with :meth:`latest_frame`."""
        with self._acting():
            if self.is_live():
                return
            self._last_image_key = None
            here = (self.xy(), self.z(), self.objective())   # before any frame begins
            with self._motion_lock:   # the camera numbers each sequence from 0 again
                self._settled_from = -1
                self._fresh_since_move = _SETTLE_FRESH
                self._count_settle = False
                self._external_move = False
                self._place = here
            self.core.startContinuousSequenceAcquisition(0)
            self._live = True

    def stop_live(self) -> None:
        """Stop continuous acquisition (idempotent)."""
        with self._lock:
            if self._live or self._safe_call(self.core.isSequenceRunning, False):
                with contextlib.suppress(Exception):
                    self.core.stopSequenceAcquisition()
            self._live = False

    def is_live(self) -> bool:
        return self._live and not self._closed

    def latest_frame(self) -> Frame | None:
        """Newest live frame (latest-frame-wins); the same Frame again if nothing new came.

        Safe to call from several threads (display and inference): numbering is serialised.
        """
        if not self.is_live():
            return self._frame
        with self._frame_lock:
            return self._fetch_frame()

    def _fetch_frame(self) -> Frame | None:
        core = self.core
        try:
            if not core.getRemainingImageCount():
                return self._frame
            img, md = core.getLastImageAndMD()
        except Exception as e:  # empty buffer between frames, or a transient bridge error
            log.debug("no live frame: %s", e)
            return self._frame
        number = _md_get(md, "ImageNumber")
        key = (number, _md_get(md, "ElapsedTime-ms")) if number is not None else (id(img),)
        if key == self._last_image_key:
            return self._frame
        self._last_image_key = key
        # without an image number the key is the object's id: hold the object so a new
        # image cannot reuse the id and be taken for the old one (a frozen live view)
        self._last_raw = img if number is None else None
        image = normalize_rgb(np.array(img, copy=True))
        # where and how: from the core, as on any stand (never from camera metadata)
        try:
            source_no: int | None = None if number is None else int(number)
        except ValueError:
            source_no = None
        pixel_um = self.pixel_size_um()
        self._tol_um = _JITTER_XY_PX * pixel_um
        (xy, z, objective), moving = self._place_of(
            source_no, (self.xy(), self.z(), self.objective()), self._tol_um)
        self._frame_no += 1
        self._frame_source_no = (self._frame_no, source_no)
        self._frame = Frame(
            image=image,
            number=self._frame_no,
            timestamp=time.time(),
            pixel_size_um=pixel_um,
            objective=objective,
            xy=xy,
            z=z,
            bit_depth=int(core.getImageBitDepth()),
            moving=moving,
        )
        return self._frame

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop live view and release the core (idempotent)."""
        if self._closed:
            return
        self.stop_live()
        self._disconnect_core_events()
        self._closed = True
        if self._owns_core:
            from hardware.cores import close_core

            close_core(self.core)

    def __enter__(self) -> Microscope:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Microscope {self.source!r} {state}>"


def open_microscope(
    source: str = "sim",
    *,
    sensor: tuple[int, int] | None = None,
    mechanical_delays: bool = False,
    user_profiles: Path | None = None,
    stage_limits: tuple[float, float, float, float] | None = None,
    z_limits: tuple[float, float] | None = None,
    safe_z: float | None = None,
) -> Microscope:
    """Open ``"sim"`` (= ``"sim:ideal"``), ``"sim:realistic"``, a ``.cfg`` path, or
    ``"pycromanager[:port]"`` behind one facade.

    ``sensor`` is (height, width) and applies to the simulator.  ``stage_limits``,
    ``z_limits`` and ``safe_z`` override what the devices report; for real stands they
    default to ``$THINKSCOPE_HOME/stage.json`` (see :mod:`hardware.stage_settings`).
    """
    profiles = load_profiles(user_profiles)
    src = source.strip()
    if src in ("", "sim:ideal"):
        src = "sim"
    opts: dict[str, Any] = {}
    if src not in ("sim", "") and not src.startswith("sim:"):
        # labels the lab has not described keep the configuration's pixel sizes
        from hardware.profiles import user_profile_labels

        opts["preset_labels"] = set(profiles) - user_profile_labels(user_profiles)
    from hardware.stage_settings import load_stage_settings

    if src in ("sim", "") or src.startswith("sim:"):  # the simulator reports its own limits
        opts.update(load_stage_settings(source=src or "sim", shared=False))
    else:  # real stands: stage.json, this configuration's entry first
        opts.update(load_stage_settings(source=src))
    given = {"stage_limits": stage_limits, "z_limits": z_limits, "safe_z": safe_z}
    opts.update({k: v for k, v in given.items() if v is not None})
    if src == "sim" or src == "":
        from hardware.cores import make_sim_core

        core: Any = make_sim_core(sensor=sensor, mechanical_delays=mechanical_delays)
        return _wrap(core, "sim", profiles, opts)
    if src == "sim:realistic":
        from hardware.cores import SIM_REALISTIC_CFG, make_sim_core

        core = make_sim_core(sensor=sensor, mechanical_delays=mechanical_delays,
                             cfg=SIM_REALISTIC_CFG)
        return _wrap(core, src, profiles, opts)
    if src.startswith("sim:"):
        raise MicroscopeError(f"Unknown simulated stand {src!r}: use 'sim:ideal' or "
                              "'sim:realistic'")
    if src.startswith("pycromanager"):
        from hardware.pycro import connect_pycromanager, parse_port

        port = parse_port(src)
        core = connect_pycromanager(port)
        return _wrap(core, f"pycromanager:{port}", profiles, opts, owns_core=False)
    from hardware.cores import load_cfg_core

    core = load_cfg_core(src)
    if sensor is not None:
        cam = core.getCameraDevice()
        with contextlib.suppress(Exception):
            core.setProperty(cam, "SensorHeight", int(sensor[0]))
            core.setProperty(cam, "SensorWidth", int(sensor[1]))
    return _wrap(core, src, profiles, opts)


def _wrap(
    core: Any, source: str, profiles: Mapping[str, ObjectiveProfile], opts: dict[str, Any],
    owns_core: bool = True,
) -> Microscope:
    try:
        scope = Microscope(core, source, profiles, owns_core=owns_core, **opts)
    except Exception:
        if owns_core:
            from hardware.cores import close_core

            close_core(core)
        raise
    if warning := scope.limits_warning():
        # a visible line on stderr for every command (logging's last-resort handler)
        log.warning("WARNING: %s", warning)
    return scope
