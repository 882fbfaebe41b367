"""ThinkScope entry point: the GUI by default, headless subcommands for scripted work."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# The GUI marshals core events to the Qt thread itself; psygnal keeps the core Qt-free.
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")

#: subcommand -> module in thinkscope_gui.cli that provides add_parser() and run()
SUBCOMMANDS = ("acquire", "train", "enhance", "snap", "bench", "demo", "calibrate", "stand",
               "evaluate", "rebuild-models")


def _source_from_args(args: argparse.Namespace) -> str:
    if args.config:
        return args.config
    if args.pycromanager is not None:
        return f"pycromanager:{args.pycromanager}"
    return "sim:realistic" if getattr(args, "sim", "ideal") == "realistic" else "sim"


def _parse_size(text: str) -> tuple[int, int]:
    """'1366x768' -> (1366, 768); argparse turns a ValueError into a clear message."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        msg = f"size must be WIDTHxHEIGHT, e.g. 1366x768: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if w < 320 or h < 240:
        raise argparse.ArgumentTypeError(f"size too small: {text!r}")
    return (w, h)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="ThinkScope: a learning bright-field microscope. "
        "Without a subcommand the GUI opens on the simulated microscope.",
    )
    hw = parser.add_mutually_exclusive_group()
    hw.add_argument("--config", metavar="FILE.cfg", help="open a real Micro-Manager configuration")
    hw.add_argument(
        "--pycromanager", nargs="?", const=4827, type=int, metavar="PORT",
        help="attach to a running Micro-Manager (default port 4827)",
    )
    hw.add_argument(
        "--sim", choices=("ideal", "realistic"), default="ideal",
        help="which simulated stand to open (default ideal; realistic: partially coherent "
        "optics, Bayer 12-bit camera, off-nominal pixel sizes, stage error)",
    )
    parser.add_argument(
        "--screenshot", metavar="PATH",
        help="start the GUI, enable live enhancement, save a screenshot, print fps, exit",
    )
    parser.add_argument(
        "--size", metavar="WxH", type=_parse_size,
        help="window size in pixels, e.g. 1366x768 (with --screenshot: every dock open)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"thinkscope_gui.cli.{name.replace('-', '_')}")
        if name == "bench":  # the window's own benchmark lives in ui/ (Qt loads only if run)
            module.register("live", _bench_live)
            module.register("session", _bench_session)
        module.add_parser(sub)
    return parser


def _bench_live(args: argparse.Namespace) -> dict:
    from thinkscope_gui.ui.bench_live import bench_target

    return bench_target(args)


def _bench_session(args: argparse.Namespace) -> dict:
    from thinkscope_gui.ui.bench_session import bench_target

    return bench_target(args)


def _no_display_reason() -> str | None:
    """Qt aborts the process when Linux has no display; say what to do instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display found (DISPLAY and WAYLAND_DISPLAY are unset). Run the GUI on a "
            "desktop, set QT_QPA_PLATFORM=offscreen for --screenshot, or use the headless "
            "subcommands (python main.py --help).")


def _dump_native_crashes() -> None:
    """A crash inside Qt or a device adapter (SIGSEGV, SIGABRT) kills the GUI without a
    Python traceback; faulthandler prints every thread's Python stack to stderr first, so
    the report says where it happened."""
    import contextlib
    import faulthandler

    # no usable stderr (pythonw, closed): run without it
    with contextlib.suppress(AttributeError, ValueError, OSError):
        faulthandler.enable(file=sys.stderr, all_threads=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.source = _source_from_args(args)
    from thinkscope_gui.logs import setup_logging

    if args.command is None:
        setup_logging("gui", stderr_scope="")
    else:
        setup_logging(args.command, stderr=False)  # commands print their own messages
    if args.command is None:
        reason = _no_display_reason()
        if reason:
            print(f"main.py: {reason}", file=sys.stderr)
            return 2
        from thinkscope_gui.ui.app import run_gui

        _dump_native_crashes()
        return run_gui(args.source, screenshot=args.screenshot, size=args.size)
    module = importlib.import_module(f"thinkscope_gui.cli.{args.command.replace('-', '_')}")
    return int(module.run(args) or 0)


if __name__ == "__main__":
    _rc = main()
    # the command has ended and said so: a late SIGINT/SIGTERM during interpreter shutdown
    # must not turn that clean end into a traceback or a different exit code
    import signal

    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, signal.SIG_IGN)
    sys.exit(_rc)
