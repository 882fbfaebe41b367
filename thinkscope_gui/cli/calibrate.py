"""`main.py calibrate`: measure pixel sizes and parcentric/parfocal offsets, save profiles."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``calibrate`` subcommand."""
    p = sub.add_parser(
        "calibrate", help="calibrate objectives by image registration and save their profiles",
        description="On the stand the global options select: autofocus, measure each "
        "objective's pixel size with a known stage step, register it inside the previous "
        "objective's field for parcentric XY and rotation, and save the profiles to "
        "$THINKSCOPE_HOME/objectives.json. The stand ends where it started (objective, XY, Z).")
    p.add_argument("--objectives", metavar="40x,100x",
                   help="objectives to calibrate, comma-separated (default: all active); "
                   "the reference (lowest magnification) is always measured")
    p.add_argument("--confirm-oil-to-dry", action="store_true",
                   help="allow the return from the oil objective to dry ones (clean the slide)")
    p.add_argument("--x", type=float, help="stage x (µm) of a field with structure")
    p.add_argument("--y", type=float, help="stage y (µm)")
    p.add_argument("--sensor", type=int, help="simulator sensor size N (NxN px)")
    p.add_argument("--no-save", action="store_true", help="measure and print only")


def run(args: argparse.Namespace) -> int:
    """0 on success, 1 if the calibration failed, 2 for bad input, 130/143 if interrupted."""
    from hardware import open_microscope
    from hardware.profiles import save_user_profiles
    from thinkscope_gui.cli.interrupt import SignalCancel
    from thinkscope_gui.jobs import Cancelled
    from thinkscope_gui.pairs.calibration import CalibrationError, calibrate

    source = getattr(args, "source", None) or "sim"
    objectives = ([s.strip() for s in args.objectives.split(",") if s.strip()]
                  if args.objectives else None)
    sensor = (args.sensor, args.sensor) if args.sensor else None
    try:
        scope = open_microscope(source, sensor=sensor)
    except Exception as exc:  # noqa: BLE001 - any connection problem, said plainly
        print(f"calibrate: cannot open the microscope: {exc}", file=sys.stderr)
        return 1
    with scope, SignalCancel() as sig:
        try:
            if args.x is not None or args.y is not None:
                x0, y0 = scope.xy()
                scope.set_xy(x0 if args.x is None else args.x, y0 if args.y is None else args.y)
            result = calibrate(scope, confirm_oil_to_dry=args.confirm_oil_to_dry,
                               objectives=objectives, cancelled=lambda: sig.cancelled,
                               progress=lambda m: print(f"  {m}", file=sys.stderr))
        except Cancelled:
            print(f"calibrate: cancelled ({sig.name}); nothing saved", file=sys.stderr)
            return sig.exit_code or 130
        except CalibrationError as exc:
            print(f"calibrate: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - stand or measurement failure, said plainly
            print(f"calibrate: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print("measured:")
        print(result.summary())
        if args.no_save:
            return 0
        scope.set_profiles(result.profiles)
        path = save_user_profiles(result.profiles)
        print(f"saved profiles to {path}")
    return 0
