"""`main.py acquire`: headless matched-pair acquisition with a progress bar and a summary."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from thinkscope_gui.logs import report


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
                   help="continue the plan stored in the file (no duplicates); give no plan "
                   "options: a different plan is refused")
    p.add_argument("--append", action="store_true",
                   help="add this plan's tiles to an existing file (recorded in its "
                   "plan_history_json)")
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


PLAN_OPTIONS = ("plan", "grid", "center", "overlap", "lr", "hr", "lr_exposure", "hr_exposure",
                "patch")


def _plan_options_given(args: argparse.Namespace) -> list[str]:
    given = [f"--{a.replace('_', '-')}" for a in PLAN_OPTIONS
             if getattr(args, a, None) is not None]
    if getattr(args, "keep_empty", False):
        given.append("--keep-empty")
    return given


def _stored_plan(path: Path) -> str | None:
    """The plan JSON a store holds (None when the file is not a readable pair store)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs["plan_json"]) if "plan_json" in f.attrs else None
    except (OSError, KeyError):
        return None


def _resume_plan(args: argparse.Namespace, out: Path) -> Any:
    """--resume: the stored plan, with any plan options applied on top (the store then
    refuses a plan that differs, saying what differs)."""
    from thinkscope_gui.pairs.plan import AcquisitionPlan

    stored = _stored_plan(out)
    if stored is None:
        return build_plan(args)
    base = (AcquisitionPlan.load(args.plan) if args.plan
            else AcquisitionPlan.model_validate_json(stored))
    # only the options actually given override the stored plan
    given = build_plan(argparse.Namespace(**{**vars(args), "plan": None})).model_dump()
    upd = {k: v for k, v in given.items() if k in _overridden_fields(args)}
    return AcquisitionPlan.model_validate({**base.model_dump(), **upd, "output": str(out)})


def _overridden_fields(args: argparse.Namespace) -> set[str]:
    names = {"grid": "grid", "center": "center_um", "overlap": "overlap", "lr": "lr_objective",
             "hr": "hr_objective", "lr_exposure": "lr_exposure_ms",
             "hr_exposure": "hr_exposure_ms", "patch": "patch_lr_px"}
    out = {f for a, f in names.items() if getattr(args, a, None) is not None}
    if getattr(args, "keep_empty", False):
        out.add("skip_empty")
    return out


def _kept(path: Path) -> int:
    """Committed pairs in an existing store (0 when there is none)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs.get("committed_pairs", 0))
    except OSError:
        return 0


def _cannot_write(out: Path) -> str:
    """Why the store cannot be written (empty when it can), checked before the microscope
    opens: a read-only file system or folder otherwise fails only once the run started."""
    if out.exists():
        target = out
    else:  # the store creates missing folders: the nearest existing one must be writable
        target = next((p for p in out.parents if p.exists()), Path("/"))
    if os.access(target, os.W_OK):
        return ""
    what = "file" if target == out else "folder"
    return (f"acquire: cannot write {out}: the {what} {target} is read-only (or not yours); "
            "choose another --out")


def _summary(status: Any, signal_name: str = "") -> str:
    kept = status.accepted + status.rejected
    if status.failed:
        head = (f"failed: {kept} pairs kept ({status.accepted} accepted, {status.rejected} "
                f"rejected)" + (f" in {status.output}" if kept else ""))
    elif status.cancelled:
        why = f"{signal_name} received; " if signal_name else ""
        head = (f"cancelled: {kept} pairs kept ({status.accepted} accepted, "
                f"{status.rejected} rejected) -> {status.output}; {why}continue with --resume")
    elif status.state.value == "finished" and status.new_pairs == 0 and kept:
        head = (f"finished: nothing left to do, all {kept} planned pairs were already in "
                f"{status.output} ({status.accepted} accepted, {status.rejected} rejected)")
    else:
        head = (f"{status.state.value}: {status.accepted} accepted, {status.rejected} rejected "
                f"-> {status.output}")
    lines = [head]
    for reason, n in status.reasons:
        lines.append(f"  rejected {n:3d}: {reason}")
    if status.measured_offset is not None:
        dx, dy, dz, rot = status.measured_offset
        lines.append(f"  measured HR-LR offset: dx={dx:+.3f} µm dy={dy:+.3f} µm "
                     f"dz={dz:+.3f} µm rotation={rot:+.3f}°")
    if status.elapsed_s > 0 and status.new_pairs:
        lines.append(f"  {status.elapsed_s:.1f} s, {status.new_pairs} new pairs, "
                     f"{60 * status.new_pairs / status.elapsed_s:.1f} pairs/min")
    t = ", ".join(f"{k} {v:.1f}s" for k, v in status.timings.items() if v > 0)
    if t:
        lines.append(f"  time: {t}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the acquisition; 0 on success, 1 on failure, 2 for bad input, 130 / 143 when
    SIGINT / SIGTERM cancelled it (the file keeps every stored pair)."""
    from pydantic import ValidationError

    from thinkscope_gui.cli.interrupt import SignalCancel

    running: list[Any] = []  # the engine, once it exists

    def on_signal() -> None:
        for engine in running:
            engine.cancel()

    with SignalCancel(on_signal) as sig:
        out = Path(args.out) if args.out else None
        resume, append = bool(args.resume), bool(getattr(args, "append", False))
        if resume and append:
            report(__name__, "acquire: --resume continues the stored plan, --append adds a "
                   "new one; choose one")
            return 2
        try:
            if resume:
                out = out or Path(build_plan(args).output)
                plan = _resume_plan(args, out)
            else:
                plan = build_plan(args)
        except (ValidationError, OSError, ValueError) as exc:
            report(__name__, f"acquire: invalid plan: {exc}")
            return 2
        out = Path(plan.output)
        if args.save_plan:
            plan.save(args.save_plan)
        if out.is_dir():
            report(__name__, f"acquire: --out {out} is a directory; give a file name such "
                   f"as {out / 'pairs.h5'}")
            return 2
        problem = _cannot_write(out)
        if problem:
            report(__name__, problem)
            return 2
        if out.exists() and not (resume or append):
            report(__name__, f"acquire: {out} exists; pass --resume to continue its plan, "
                   "--append to add a new plan's tiles to it, or --out NEW.h5")
            return 2
        if resume and out.exists():
            from thinkscope_gui.pairs.store import plan_differences

            stored = _stored_plan(out)
            diff = plan_differences(stored, plan.to_json()) if stored else []
            if diff:
                lines = "\n  ".join(diff)
                report(__name__, f"acquire: {out} holds another plan; --resume continues only "
                       f"the stored plan (run it without plan options). Differences:\n  {lines}"
                       "\nTo acquire the new plan start a new file with --out NEW.h5, or add "
                       "its tiles to this file with --append")
                return 2
        return _acquire(args, plan, resume, append, sig, running)


def _acquire(args: argparse.Namespace, plan: Any, resume: bool, append: bool,
             sig: Any, running: list[Any]) -> int:
    from tqdm import tqdm

    from thinkscope_gui.pairs.engine import AcquisitionEngine, AcquisitionEvent

    if sig.cancelled:
        print(f"cancelled: {_kept(Path(plan.output))} pairs kept -> {plan.output}; "
              f"{sig.name} received before the run started")
        return sig.exit_code
    try:
        from hardware import open_microscope

        sensor = (args.sensor, args.sensor) if args.sensor else None
        scope = open_microscope(getattr(args, "source", "sim"), sensor=sensor,
                                mechanical_delays=bool(args.delays))
    except Exception as exc:  # noqa: BLE001 - report any connection problem plainly
        report(__name__, f"acquire: cannot open the microscope: {exc}")
        return 1
    bar = None if args.quiet else tqdm(total=1, unit="step", dynamic_ncols=True)

    def on_event(ev: AcquisitionEvent) -> None:
        if bar is None:
            return
        s = ev.status
        bar.total = max(s.total, 1)
        bar.n = s.done
        bar.set_postfix_str(f"{s.phase} ok={s.accepted} rej={s.rejected}"
                            + (f" eta={s.eta_s:.0f}s" if s.eta_s else ""), refresh=False)
        bar.refresh()

    engine = AcquisitionEngine(plan, scope, on_event, resume=resume, append=append)
    running.append(engine)
    try:
        thread = engine.start()
        if sig.cancelled:  # a signal between opening the scope and start()
            engine.cancel()
        # signals only set a flag and cancel the engine (cli/interrupt.py); the engine's
        # own end event (not Thread.join, see engine.ended) says it no longer uses the scope
        while not engine.ended.wait(0.5):
            pass
        thread.join(5.0)
        status = engine.status()
    finally:
        if bar is not None:
            bar.close()
        scope.close()  # only now: the engine no longer uses the microscope
    print(_summary(status, sig.name))
    if status.failed:
        report(__name__, f"acquire: failed: {status.message}")
        return 1
    if sig.cancelled and status.cancelled:  # (a signal after the last pair cancels nothing)
        report(__name__, f"acquire: cancelled by {sig.name}: "
               f"{status.accepted + status.rejected} pairs kept in {status.output}",
               logging.WARNING)
        return sig.exit_code
    return 0
