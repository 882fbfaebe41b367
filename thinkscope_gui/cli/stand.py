"""`main.py stand`: show the stand's safety settings and store the ones given, per configuration.

A lab's Micro-Manager configuration rarely states where focus may go before an objective
change or how far the stage may travel; the lab manager states them here once and every
later session on the same ``.cfg`` (keyed by its absolute path) uses them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["add_parser", "format_settings", "run"]


def _floats(n: int, what: str) -> Any:
    def parse(text: str) -> tuple[float, ...]:
        try:
            vals = tuple(float(v) for v in text.replace(" ", "").split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: expected {n} numbers separated by "
                                             f"commas, got {text!r}") from None
        if len(vals) != n or not all(math.isfinite(v) for v in vals):
            raise argparse.ArgumentTypeError(f"{what}: expected {n} finite numbers separated "
                                             f"by commas, got {text!r}")
        if any(lo >= hi for lo, hi in zip(vals[::2], vals[1::2], strict=True)):
            raise argparse.ArgumentTypeError(f"{what}: each minimum must be below its maximum: "
                                             f"{text!r}")
        return vals
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``stand`` subcommand."""
    p = sub.add_parser(
        "stand", help="show the stand's settings; store safe focus and stage limits",
        description="Print the current stand's objectives, safe focus and travel limits, and "
        "store the ones given for this configuration (in $THINKSCOPE_HOME/stage.json). "
        "Negative values: --safe-z=-100, --z-limits=-200,5000.")
    p.add_argument("--safe-z", type=float, metavar="Z",
                   help="focus position (µm) where every objective clears the slide; focus "
                   "goes there before each objective change")
    p.add_argument("--xy-limits", type=_floats(4, "--xy-limits"),
                   metavar="XMIN,XMAX,YMIN,YMAX", help="stage travel limits in µm")
    p.add_argument("--z-limits", type=_floats(2, "--z-limits"), metavar="ZMIN,ZMAX",
                   help="focus travel limits in µm")
    p.add_argument("--clear", action="store_true",
                   help="forget this configuration's stored settings first")


def _range(vals: tuple[float, ...]) -> str:
    if not all(math.isfinite(v) for v in vals):
        return "not set (unbounded)"
    return ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(vals[::2], vals[1::2], strict=True))


def format_settings(scope: Any) -> str:
    """The stand as an operator reads it: objectives with profiles, safety settings."""
    from hardware.stage_settings import stand_key

    s = scope.stand_settings()
    lines = [f"stand: {stand_key(scope.source)}",
             f"camera: {scope.image_shape()[1]}x{scope.image_shape()[0]} px, "
             f"{scope.bit_depth()} bit, {scope.pixel_size_um():g} µm/px now",
             "objectives (turret label -> profile):"]
    for label in scope.objectives():
        p = scope.profile(label)
        mark = "*" if label == scope.objective() else " "
        state = "  (retired / empty position)" if p.retired else ""
        lines.append(f" {mark} {label!r}: {p.magnification:g}x NA {p.na:g} {p.immersion}, "
                     f"{p.pixel_size_um:g} µm/px{state}")
    lines.append(f"XY limits (µm): {_range(s['stage_limits'])}")
    lines.append(f"Z limits (µm): {_range(s['z_limits'])}")
    lines.append("safe focus for objective changes (µm): "
                 + ("NOT SET" if s["safe_z"] is None else f"{s['safe_z']:g}"))
    return "\n".join(lines)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No limits warning from the facade while checking values (the final print says it)."""
    logger = logging.getLogger("hardware.microscope")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run(args: argparse.Namespace) -> int:
    """Store the given settings, then print the stand; 0 on success."""
    from hardware import MicroscopeError, open_microscope
    from hardware.stage_settings import FIELDS, save_stage_settings

    source = getattr(args, "source", None) or "sim"
    values = {"stage_limits": args.xy_limits, "z_limits": args.z_limits, "safe_z": args.safe_z}
    given = {k: v for k, v in values.items() if v is not None}
    try:
        if args.clear:
            save_stage_settings(source, **dict.fromkeys(FIELDS))
        if given:
            # check against what the stand itself reports before storing anything
            with _quiet(), open_microscope(source) as scope:
                scope.set_stand_settings(**given)
            path = save_stage_settings(source, **given)
            print(f"stored for this configuration in {path}: "
                  + ", ".join(f"{FIELDS[k]}={v}" for k, v in given.items()))
        with open_microscope(source) as scope:  # its limits warning goes to stderr
            print(format_settings(scope))
            if scope.stand_settings()["safe_z"] is None:
                print("WARNING: no safe focus position: objective changes are refused until "
                      "you set one (stand --safe-z Z)", file=sys.stderr)
    except (MicroscopeError, ValueError, OSError) as exc:
        print(f"stand: {exc}", file=sys.stderr)
        return 2
    return 0
