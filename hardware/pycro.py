"""Attach to a running Micro-Manager through pycromanager's ZMQ bridge.

pycromanager hands out the Java ``CMMCore`` with snake_case method names (pyjavaz converts
``getXYPosition`` to ``get_xy_position``) and images as tagged images (flat ``pix`` plus
``tags``).  :class:`PycroCoreAdapter` maps that back onto the camelCase ``CMMCorePlus``
surface the facade uses, so one facade serves all three sources.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from typing import Any

import numpy as np

from hardware.errors import MicroscopeError

__all__ = [
    "DEFAULT_PORT",
    "PycroCoreAdapter",
    "camel_to_snake",
    "connect_pycromanager",
    "parse_port",
    "probe_port",
    "tagged_to_array",
]

DEFAULT_PORT = 4827


def camel_to_snake(name: str) -> str:
    """The same conversion pyjavaz applies (``_camel_case_2_snake_case``)."""
    s1 = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", s1).lower()


def parse_port(source: str) -> int:
    """``"pycromanager"`` -> 4827, ``"pycromanager:5000"`` -> 5000."""
    _, _, port = source.partition(":")
    if not port.strip():
        return DEFAULT_PORT
    try:
        value = int(port)
    except ValueError:
        raise MicroscopeError(f"Bad pycromanager port in {source!r}: expected an integer") from None
    if not 0 < value < 65536:
        raise MicroscopeError(f"Bad pycromanager port {value}: must be 1..65535")
    return value


def _not_listening(port: int) -> MicroscopeError:
    return MicroscopeError(
        f"No Micro-Manager is listening on port {port}: start Micro-Manager and enable the "
        f"ZMQ server (Tools > Options > Run server on port {port})"
    )


def probe_port(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> None:
    """Fail fast (about a second) when nothing listens, instead of a hanging ZMQ connect."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise _not_listening(port) from e


def connect_pycromanager(port: int = DEFAULT_PORT) -> PycroCoreAdapter:
    """Adapter over ``pycromanager.Core(port=...)``; clear error if Micro-Manager is absent."""
    probe_port(port)
    try:
        from pycromanager import Core
    except ImportError as e:  # optional dependency (the "bridge" extra)
        raise MicroscopeError(f"pycromanager is not installed: {e}") from e
    try:
        java_core = Core(port=port, timeout=2000)
    except Exception as e:
        raise MicroscopeError(
            f"Micro-Manager on port {port} did not answer as a ZMQ core: {e}"
        ) from e
    return PycroCoreAdapter(java_core)


# ---------------------------------------------------------------- conversions

_PIXEL_TYPES: dict[str, tuple[Any, int]] = {
    # tag -> (dtype of one component, components)
    "GRAY8": (np.uint8, 1),
    "GRAY16": (np.uint16, 1),
    "GRAY32": (np.float32, 1),
    "RGB32": (np.uint8, 4),
    "RGB64": (np.uint16, 4),
}


def _tags_dict(tags: Any) -> dict[str, Any]:
    if isinstance(tags, Mapping):
        return dict(tags)
    if isinstance(tags, str):
        return dict(json.loads(tags))
    for name in ("to_string", "toString"):
        if hasattr(tags, name):
            return dict(json.loads(getattr(tags, name)()))
    return dict(tags)


def tagged_to_array(tagged: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """(H, W) or (H, W, 3) RGB array and the tags from a tagged image.

    Java hands pixels over as a flat, signed array (``byte[]``/``short[]``/``int[]``);
    RGB32 is BGRA.  Only the raw bytes are trusted; the tags give the layout.
    """
    tags = _tags_dict(tagged.tags)
    h, w = int(tags["Height"]), int(tags["Width"])
    ptype = str(tags.get("PixelType", "")).upper()
    pix = np.ascontiguousarray(np.asarray(tagged.pix))
    dtype, comps = _PIXEL_TYPES.get(ptype, (None, 0))
    if dtype is None or pix.nbytes != h * w * comps * np.dtype(dtype).itemsize:
        # unknown or inconsistent tag: infer the layout from the byte count
        per_px = pix.nbytes // max(1, h * w)
        dtype, comps = {1: (np.uint8, 1), 2: (np.uint16, 1), 4: (np.uint8, 4),
                        8: (np.uint16, 4)}.get(per_px, (dtype or pix.dtype, comps or 1))
    raw = pix.reshape(-1).view(np.uint8)
    expected = h * w * comps * np.dtype(dtype).itemsize
    if raw.size != expected:
        raise MicroscopeError(
            f"Tagged image has {raw.size} bytes; {ptype or '?'} {w}x{h} needs {expected}"
        )
    img = raw.view(dtype).reshape((h, w, comps) if comps > 1 else (h, w))
    if comps == 4:
        img = np.ascontiguousarray(img[..., [2, 1, 0]])  # BGRA -> RGB
    return img, tags


def _as_list(vec: Any) -> list[Any]:
    """Java vectors (size()/get(i)) and Python sequences alike."""
    if isinstance(vec, list | tuple):
        return list(vec)
    if hasattr(vec, "size") and hasattr(vec, "get") and callable(vec.size):
        return [vec.get(i) for i in range(int(vec.size()))]
    return list(vec)


def _call(obj: Any, *names: str) -> Any:
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)()
    raise AttributeError(f"{type(obj).__name__} has none of {names}")


def _settings(config: Any) -> list[tuple[str, str, str]]:
    """(device, property, value) triples from a Java/pymmcore Configuration."""
    if isinstance(config, list | tuple):
        return [tuple(map(str, s)) for s in config]  # type: ignore[misc]
    n = int(_call(config, "size"))
    getter = getattr(config, "get_setting", None) or config.getSetting
    out = []
    for i in range(n):
        s = getter(i)
        out.append(
            (
                str(_call(s, "get_device_label", "getDeviceLabel")),
                str(_call(s, "get_property_name", "getPropertyName")),
                str(_call(s, "get_property_value", "getPropertyValue")),
            )
        )
    return out


def _device_type_int(value: Any) -> int:
    if isinstance(value, int | np.integer):
        return int(value)
    for name in ("swig_value", "swigValue", "value"):
        attr = getattr(value, name, None)
        if attr is not None:
            return int(attr() if callable(attr) else attr)
    names = {"CameraDevice": 2, "ShutterDevice": 3, "StateDevice": 4, "StageDevice": 5,
             "XYStageDevice": 6}
    return names.get(str(value), 0)


class PycroCoreAdapter:
    """camelCase ``CMMCorePlus``-like view of a snake_case (pycromanager) core."""

    def __init__(self, snake_core: Any) -> None:
        self._core = snake_core
        self._last_tagged_number = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._core, camel_to_snake(name))

    # ---- values that need converting ----

    def getXYPosition(self) -> tuple[float, float]:  # noqa: N802 - MM API
        c = self._core
        return float(c.get_x_position()), float(c.get_y_position())

    def setXYPosition(self, x: float, y: float) -> None:  # noqa: N802
        self._core.set_xy_position(float(x), float(y))

    def getPosition(self) -> float:  # noqa: N802
        return float(self._core.get_position())

    def setPosition(self, z: float) -> None:  # noqa: N802
        self._core.set_position(float(z))

    def getStateLabels(self, dev: str) -> list[str]:  # noqa: N802
        return [str(s) for s in _as_list(self._core.get_state_labels(dev))]

    def getAvailableConfigGroups(self) -> list[str]:  # noqa: N802
        return [str(s) for s in _as_list(self._core.get_available_config_groups())]

    def getAvailableConfigs(self, group: str) -> list[str]:  # noqa: N802
        return [str(s) for s in _as_list(self._core.get_available_configs(group))]

    def getAvailablePixelSizeConfigs(self) -> list[str]:  # noqa: N802
        return [str(s) for s in _as_list(self._core.get_available_pixel_size_configs())]

    def getLoadedDevices(self) -> list[str]:  # noqa: N802
        return [str(s) for s in _as_list(self._core.get_loaded_devices())]

    def getConfigData(self, group: str, preset: str) -> list[tuple[str, str, str]]:  # noqa: N802
        return _settings(self._core.get_config_data(group, preset))

    def getPixelSizeConfigData(self, res_id: str) -> list[tuple[str, str, str]]:  # noqa: N802
        return _settings(self._core.get_pixel_size_config_data(res_id))

    def getDeviceType(self, dev: str) -> int:  # noqa: N802
        return _device_type_int(self._core.get_device_type(dev))

    # ---- images ----

    def _tagged_snap(self) -> Any:
        c = self._core
        try:
            return c.get_tagged_image()
        except TypeError:
            # pycromanager's Python backend wants the tags spelled out
            return c.get_tagged_image(
                0, c.get_camera_device(), c.get_image_height(), c.get_image_width(),
                pixel_type=self._pixel_type(),
            )

    def _pixel_type(self) -> str:
        c = self._core
        comps, bpp = int(c.get_number_of_components()), int(c.get_bytes_per_pixel())
        if comps == 4 or comps == 3:
            return "RGB32" if bpp in (1, 4) else "RGB64"
        return {1: "GRAY8", 2: "GRAY16", 4: "GRAY32"}.get(bpp, "GRAY8")

    def getROI(self, *label: str) -> list[int]:  # noqa: N802
        """[x, y, width, height]: the Java core answers a ``java.awt.Rectangle``."""
        roi = self._core.get_roi(*label)
        if isinstance(roi, (list, tuple, np.ndarray)):
            return [int(v) for v in roi]
        vals = []
        for f in ("x", "y", "width", "height"):
            v = getattr(roi, f, None)
            if v is None or callable(v):
                v = _call(roi, f"get_{f}", f"get{f.capitalize()}")
            vals.append(int(v))
        return vals

    def getImage(self) -> np.ndarray:  # noqa: N802
        img, _ = tagged_to_array(self._tagged_snap())
        return img

    def getImageBitDepth(self) -> int:  # noqa: N802
        return int(self._core.get_image_bit_depth())

    def getLastImageAndMD(self) -> tuple[np.ndarray, dict[str, Any]]:  # noqa: N802
        """Newest image of a running sequence; older buffered images are dropped."""
        c = self._core
        if hasattr(c, "get_last_tagged_image"):
            tagged = c.get_last_tagged_image()
        else:
            tagged = None
            while int(c.get_remaining_image_count()) > 0:
                tagged = c.pop_next_tagged_image()
            if tagged is None:
                raise IndexError("Circular buffer is empty.")
        return tagged_to_array(tagged)

    def getPixelSizeUm(self, cached: bool = False) -> float:  # noqa: N802
        """The Java core's pixel size (``cached`` accepted for CMMCorePlus compatibility)."""
        return float(self._core.get_pixel_size_um())

    def isSequenceRunning(self) -> bool:  # noqa: N802
        return bool(self._core.is_sequence_running())
