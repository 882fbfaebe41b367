"""`main.py acquire`: headless matched-pair acquisition with a progress bar and a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _pair(text: str, sep: str, kind: type) -> tuple[Any, Any]:
    parts = text.lower().replace(" ", "").split(sep)
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two values separated by {sep!r}: {text!r}")
    try:
        return kind(parts[0]), kind(parts[1])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``acquire`` subcommand."""
    p = sub.add_parser(
        "acquire", help="acquire matched LR/HR pairs into an HDF5 pair store",
        description="Tile a slide region with the LR objective (autofocus each tile), change "
        "objective once, revisit every tile with the HR objective, register and store pairs. "
        "Options override the plan file.")
    p.add_argument("--plan", type=Path, help="plan JSON (AcquisitionPlan); options override it")
    p.add_argument("--out", help="output HDF5 file (default: the plan's, else pairs.h5)")
    p.add_argument("--grid", type=lambda s: _pair(s, "x", int), help="tiles NxM, e.g. 4x4")
    p.add_argument("--center", type=lambda s: _pair(s, ",", float), metavar="X,Y",
                   help="grid centre in µm (default 5000,0: epithelium); negative values: "
                   "--center=-3000,100")
    p.add_argument("--overlap", type=float, help="overlap between HR fields, 0..0.9")
    p.add_argument("--lr", help="LR objective label (default 40x)")
    p.add_argument("--hr", help="HR objective label (default 100x)")
    p.add_argument("--lr-exposure", type=float, help="LR exposure in ms")
    p.add_argument("--hr-exposure", type=float, help="HR exposure in ms")
    p.add_argument("--patch", type=int, help="LR patch side in px (even; default: largest)")
    p.add_argument("--keep-empty", action="store_true", help="visit glass tiles with HR too")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the same file (no duplicates)")
    p.add_argument("--sensor", type=int, help="simulator sensor size N (NxN px)")
    p.add_argument("--delays", action="store_true", help="simulate mechanical delays")
    p.add_argument("--save-plan", type=Path, help="write the effective plan JSON and continue")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_plan(args: argparse.Namespace) -> Any:
    """The effective plan: the plan file (or defaults) with command-line overrides."""
    from thinkscope_gui.pairs.plan import AcquisitionPlan

    base = AcquisitionPlan.load(args.plan) if args.plan else AcquisitionPlan()
    upd: dict[str, Any] = {}
    for attr, key in (("out", "output"), ("grid", "grid"), ("center", "center_um"),
                      ("overlap", "overlap"), ("lr", "lr_objective"), ("hr", "hr_objective"),
                      ("lr_exposure", "lr_exposure_ms"), ("hr_exposure", "hr_exposure_ms"),
                      ("patch", "patch_lr_px")):
        value = getattr(args, attr, None)
        if value is not None:
            upd[key] = value
    if getattr(args, "keep_empty", False):
        upd["skip_empty"] = False
    return AcquisitionPlan.model_validate({**base.model_dump(), **upd})


def _summary(status: Any) -> str:
    lines = [f"{status.state.value}{' (cancelled)' if status.cancelled else ''}: "
             f"{status.accepted} accepted, {status.rejected} rejected -> {status.output}"]
    for reason, n in status.reasons:
        lines.append(f"  rejected {n:3d}: {reason}")
    if status.measured_offset is not None:
        dx, dy, dz, rot = status.measured_offset
        lines.append(f"  measured HR-LR offset: dx={dx:+.3f} µm dy={dy:+.3f} µm "
                     f"dz={dz:+.3f} µm rotation={rot:+.3f}°")
    pairs = status.accepted + status.rejected
    if status.elapsed_s > 0 and pairs:
        lines.append(f"  {status.elapsed_s:.1f} s, {60 * pairs / status.elapsed_s:.1f} pairs/min")
    t = ", ".join(f"{k} {v:.1f}s" for k, v in status.timings.items() if v > 0)
    if t:
        lines.append(f"  time: {t}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the acquisition; 0 on success, 1 on failure, 130 when interrupted."""
    from pydantic import ValidationError
    from tqdm import tqdm

    from thinkscope_gui.pairs.engine import AcquisitionEngine, AcquisitionEvent, RunState

    try:
        plan = build_plan(args)
    except (ValidationError, OSError, ValueError) as exc:
        print(f"acquire: invalid plan: {exc}", file=sys.stderr)
        return 2
    if args.save_plan:
        plan.save(args.save_plan)
    if Path(plan.output).exists() and not args.resume:
        print(f"acquire: {plan.output} exists; pass --resume to continue it or --out NEW.h5",
              file=sys.stderr)
        return 2
    try:
        from hardware import open_microscope

        sensor = (args.sensor, args.sensor) if args.sensor else None
        scope = open_microscope(getattr(args, "source", "sim"), sensor=sensor,
                                mechanical_delays=bool(args.delays))
    except Exception as exc:  # noqa: BLE001 - report any connection problem plainly
        print(f"acquire: cannot open the microscope: {exc}", file=sys.stderr)
        return 1
    bar = None if args.quiet else tqdm(total=1, unit="tile", dynamic_ncols=True)

    def on_event(ev: AcquisitionEvent) -> None:
        if bar is None:
            return
        s = ev.status
        bar.total = max(s.total, 1)
        bar.n = s.done
        bar.set_postfix_str(f"{s.phase} ok={s.accepted} rej={s.rejected}"
                            + (f" eta={s.eta_s:.0f}s" if s.eta_s else ""), refresh=False)
        bar.refresh()

    engine = AcquisitionEngine(plan, scope, on_event, resume=args.resume)
    try:
        thread = engine.start()
        try:
            while thread.is_alive():
                thread.join(0.5)
        except KeyboardInterrupt:
            engine.cancel()
            status = engine.wait()
            if bar is not None:
                bar.close()
            print("\n" + _summary(status))
            return 130
        status = engine.status()
    finally:
        if bar is not None:
            bar.close()
        scope.close()
    print(_summary(status))
    if status.state == RunState.FAILED:
        print(f"acquire: failed: {status.message}", file=sys.stderr)
        return 1
    return 0
