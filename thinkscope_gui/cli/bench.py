"""`main.py bench TARGET`: speed figures live here, never in timed unit tests."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def _camera(args: argparse.Namespace) -> dict[str, Any]:
    """Live fps through the whole stack and the renderer alone, on both simulated stands."""
    from hardware.bench_live import bench_live
    from hardware.sim.bench import bench_camera
    from hardware.sim.realistic import RealisticRenderer
    from hardware.sim.render import SimRenderer

    shape = (args.size, args.size)
    out: dict[str, Any] = {}
    # the ideal stand's figures keep their plain names; the realistic ones are prefixed
    for prefix, source, renderer in (("", "sim", SimRenderer),
                                     ("realistic_", "sim:realistic", RealisticRenderer)):
        live = bench_live(shape, seconds=args.seconds, source=source)
        out.update({f"{prefix}{k}": v for k, v in live.items()})
        figures = bench_camera(shape, seconds=args.seconds, renderer=renderer())
        out.update({f"{prefix}renderer_{k}": v for k, v in figures.items()})
    return out


def _enhance(args: argparse.Namespace) -> dict[str, Any]:
    from thinkscope_gui.learn.bench import bench_enhance

    out = bench_enhance(model=args.model, device=args.device, seconds=args.seconds)
    if getattr(args, "memory_size", 0):  # peak RSS of a streamed large image (subprocess)
        from thinkscope_gui.learn.bench import bench_enhance_memory

        out.update(bench_enhance_memory(args.model, args.device, size=args.memory_size))
    return out


def _acquire(args: argparse.Namespace) -> dict[str, Any]:
    from thinkscope_gui.pairs.bench import bench_acquire

    source = getattr(args, "source", "sim")
    if not source.startswith("sim"):
        source = "sim"  # acquisition is benchmarked on a simulated stand (--sim picks which)
    out: dict[str, Any] = {}
    for delays in (False, True):
        key = "with_delays" if delays else "no_delays"
        out[key] = bench_acquire(grid=(args.grid, args.grid), delays=delays, source=source)
    return out


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from thinkscope_gui.learn.bench import bench_train

    procs = tuple(int(n) for n in str(args.procs).split(",") if n.strip())
    return bench_train(procs=procs, device=args.device, arch=args.arch, steps=args.steps,
                       threads=args.threads, batch=args.batch)


def _engines(args: argparse.Namespace) -> dict[str, Any]:
    from thinkscope_gui.learn.bench_engines import bench_engines

    return bench_engines(device=args.device, threads=args.threads_engines,
                         log=(lambda *_: None) if args.json else print)


TARGETS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "camera": _camera,
    "enhance": _enhance,
    "acquire": _acquire,
    "train": _train,
    "engines": _engines,
}
"""Benchmarks by name. ``live`` and ``session`` (the real window, offscreen) live in ui/ and
are registered by main.py through :func:`register`, so this headless layer never imports
Qt."""


def register(name: str, target: Callable[[argparse.Namespace], dict[str, Any]]) -> None:
    """Add a benchmark from a higher layer (main.py adds ``live`` from ui/)."""
    TARGETS[name] = target


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure camera, enhancement or acquisition speed")
    p.add_argument("target", choices=[*TARGETS, "all"])
    p.add_argument("--size", type=int, default=1024, help="camera sensor size (camera target)")
    p.add_argument("--seconds", type=float, default=5.0, help="measurement time per figure")
    p.add_argument("--model", default=None, help="model file (enhance target; default model)")
    p.add_argument("--device", default=None, help="torch device for enhance: cpu or cuda")
    p.add_argument("--grid", type=int, default=4, help="N for an NxN acquisition grid")
    p.add_argument("--procs", default="1,2",  # --device also picks the train device
                   help="train target: process counts to compare (1 = plain, N = torchrun)")
    p.add_argument("--arch", default="fast", choices=["fast", "quality"],
                   help="train target: network to train")
    p.add_argument("--steps", type=int, default=30, help="train target: optimizer steps")
    p.add_argument("--threads", type=int, default=1, help="train target: CPU threads/process")
    p.add_argument("--batch", type=int, default=16, help="train target: global batch size")
    p.add_argument("--gpu", action="store_true", help="live target: enhance on CUDA")
    p.add_argument("--threads-engines", type=int, default=2,
                   help="engines target: CPU threads for every engine")
    p.add_argument("--json", action="store_true", help="print the figures as JSON only")
    p.add_argument("--explain", action="store_true",
                   help="session, live: say what every thread did in each stall over 50 ms")
    p.add_argument("--memory-size", type=int, default=6000,
                   help="enhance: also measure the peak RSS of enhancing an NxN image "
                   "(0: skip)")


def run(args: argparse.Namespace) -> int:
    names = list(TARGETS) if args.target == "all" else [args.target]
    results = {name: TARGETS[name](args) for name in names}
    summary = results.get("live", {}).pop("summary", []) if not args.json else []
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for name, figures in results.items():
            print(f"== bench {name}")
            for key, value in figures.items():
                print(f"  {key}: {value}")
    for line in summary:  # bench live ends with one line per mode and zoom
        print(line)
    return 0
