"""`main.py snap OUT.tif`: one calibrated frame to a TIFF, for scripts and quick checks.

The pixel size and the stand's state go in by the one convention of
:mod:`thinkscope_gui.tiff` (ImageJ/Fiji and tifffile read the µm pixel size back).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thinkscope_gui.tiff import write_tiff

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``snap`` subcommand."""
    p = sub.add_parser("snap", help="take one frame and save it as a calibrated TIFF")
    p.add_argument("out", type=Path, help="output .tif path")
    p.add_argument("--objective", help="turret label to use, e.g. 40x")
    p.add_argument("--x", type=float, help="stage x (µm)")
    p.add_argument("--y", type=float, help="stage y (µm)")
    p.add_argument("--z", type=float, help="focus z (µm)")
    p.add_argument("--exposure", type=float, help="exposure (ms)")
    p.add_argument(
        "--sensor", type=int, nargs=2, metavar=("H", "W"), help="simulator sensor size"
    )
    p.add_argument(
        "--source", dest="snap_source", default=None,
        help='"sim", a .cfg file or "pycromanager[:port]" (default: the global choice)',
    )
    p.add_argument(
        "--confirm-oil-to-dry", action="store_true",
        help="allow going from the oil objective back to a dry one (clean the slide first)",
    )


def run(args: argparse.Namespace) -> int:
    """Open the microscope, position it, snap, save; exit code 0 on success."""
    from hardware import MicroscopeError, open_microscope

    out = Path(args.out)
    problem = _output_problem(out)
    if problem:
        print(f"snap: {problem}", file=sys.stderr)
        return 2
    source = args.snap_source or getattr(args, "source", None) or "sim"
    sensor = tuple(args.sensor) if args.sensor else None
    try:
        with open_microscope(source, sensor=sensor) as scope:
            if args.objective:
                scope.set_objective(args.objective, confirm_oil_to_dry=args.confirm_oil_to_dry)
            if args.x is not None or args.y is not None:
                x0, y0 = scope.xy()
                scope.set_xy(x0 if args.x is None else args.x, y0 if args.y is None else args.y)
            if args.z is not None:
                scope.set_z(args.z)
            if args.exposure is not None:
                scope.set_exposure(args.exposure)
            image = scope.snap()
            ps = scope.pixel_size_um()
            x, y = scope.xy()
            meta = {
                "source": scope.source,
                "objective": scope.objective(),
                "profile": scope.profile().model_dump(mode="json"),
                "stage_xy_um": [x, y],
                "z_um": scope.z(),
                "exposure_ms": scope.exposure(),
                "bit_depth": scope.bit_depth(),
            }
    except MicroscopeError as e:
        print(f"snap: {e}", file=sys.stderr)
        return 2
    try:  # write_tiff writes under a temporary name: never a half TIFF
        write_tiff(out, image, ps, meta)
    except OSError as e:
        print(f"snap: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"saved {out} {image.shape[1]}x{image.shape[0]} {image.dtype} "
          f"{ps:g} µm/px at {meta['objective']}")
    return 0


def _output_problem(out: Path) -> str | None:
    """Why ``out`` cannot take the TIFF, checked before the microscope opens (None: fine)."""
    if out.suffix.lower() not in (".tif", ".tiff"):
        return f"{out}: snap writes a calibrated TIFF; give a .tif or .tiff name"
    if out.is_dir():
        return f"{out}: is a folder; give a .tif file name"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{out}: cannot create its folder: {e.strerror or e}"
    return None
