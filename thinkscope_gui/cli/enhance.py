"""`main.py enhance IN OUT [--model fast|quality|PATH]`: enhance PNG/TIFF/JPEG files or
whole folders into PNG/TIFF; stills default to the shipped quality model."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thinkscope_gui.cli.interrupt import SignalCancel

#: stills and whole fields get the quality model (the live view keeps the fast one)
STILLS_MODEL = "quality"
log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enhance", help="enhance 40x images (PNG/TIFF/JPEG file or folder)",
                       description="Large images are enhanced band by band and streamed into "
                       "the output file. JPEG inputs are written as PNG; the input is never "
                       "overwritten. In a folder (hidden files ignored), unreadable images are "
                       "skipped and named at the end (exit code 1). Exit code 2: nothing "
                       "could be done (bad input, model or output). SIGINT/SIGTERM stop after "
                       "the current band; finished images stay, the partial one is removed "
                       "(exit 130/143).")
    p.add_argument("input", help="image file or folder of images")
    p.add_argument("output", help="output file, or folder when the input is a folder")
    p.add_argument("--model", default=STILLS_MODEL, metavar="fast|quality|PATH",
                   help="shipped model (fast: the live view's; quality: for stills) or a "
                   f"model file (default: {STILLS_MODEL})")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--bit-depth", type=int, default=None,
                   help="significant bits of 16-bit inputs (default: full range)")
    p.add_argument("--tta", action="store_true",
                   help="self-ensemble: average the model over the 8 rotations/flips "
                   "(8x slower; stills only, see `main.py evaluate --tta`)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """0: all written; 1: some inputs were bad (named); 2: nothing could be done;
    130/143: cancelled by SIGINT/SIGTERM."""
    from thinkscope_gui.cli.interrupt import SignalCancel

    with SignalCancel() as sig:
        return _run(args, sig)


def _run(args: argparse.Namespace, sig: SignalCancel) -> int:
    from tqdm import tqdm

    from thinkscope_gui.cli.interrupt import run_job
    from thinkscope_gui.jobs import Cancelled, FinishReason, FunctionJob, JobControl
    from thinkscope_gui.learn.errors import ModelFileError, ModelMismatchError
    from thinkscope_gui.learn.imageio import (
        INPUT_EXTS,
        ImageFileError,
        enhance_file,
        output_name,
        same_file,
    )
    from thinkscope_gui.learn.infer import Enhancer

    src, dst = Path(args.input), Path(args.output)
    quiet = bool(getattr(args, "quiet", False))
    if not src.exists() and not src.is_symlink():  # a dangling link: read_input says so
        print(f"error: {src} does not exist")
        log.error("enhance: %s does not exist", src)
        return 2
    if src.is_dir():
        entries = [p for p in src.iterdir() if not p.name.startswith(".")]
        files = sorted(p for p in entries if p.suffix.lower() in INPUT_EXTS)
        ignored = len(entries) - len(files)
        problem = None
        if dst.exists() and not dst.is_dir():
            problem = f"{dst} is a file; give a folder for a folder input"
        elif same_file(src, dst):
            problem = f"{dst} is the input folder; give another output folder (enhance " \
                      "never overwrites its inputs)"
        elif not files:
            problem = f"no PNG/TIFF/JPEG images in {src}" + (
                f" ({ignored} other file(s))" if ignored else "")
        if problem is None:
            try:
                dst.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                problem = f"{dst}: cannot create the output folder: {e.strerror or e}"
        if problem is not None:
            print(f"error: {problem}")
            log.error("enhance: %s", problem)
            return 2
    try:
        enh = Enhancer.load(args.model, device=args.device)
    except ModelFileError as e:
        print(f"error: {e}")
        log.error("enhance: %s", e)
        return 2
    if getattr(args, "tta", False):
        from thinkscope_gui.learn.tta import SelfEnsemble

        enh = SelfEnsemble(enh)  # type: ignore[assignment]
    def one(f: Path, out: Path, bar_desc: str | None,
            cancel: Callable[[], bool], taken: Collection[Path] = ()) -> Path:
        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if quiet or total < 4:
                return
            if bar is None:
                bar = tqdm(total=total, unit="band", desc=bar_desc or f.name, leave=False)
            bar.update(done - bar.n)

        try:
            return enhance_file(enh, f, out, bit_depth=args.bit_depth, progress=progress,
                                cancel=cancel, taken=taken)
        finally:
            if bar is not None:
                bar.close()

    if src.is_dir():
        bad: list[str] = []
        outs = _plan_outputs(files, dst)
        taken = set(outs.values())
        written = 0

        def batch(control: JobControl) -> None:
            """The folder as one job of the runner: a signal cancels it between images
            or between the bands of a large one."""
            nonlocal written
            with tqdm(total=len(files), unit="image", disable=quiet or None) as fbar:
                for i, f in enumerate(files):
                    control.checkpoint()
                    control.progress(done=i, total=len(files), message=f.name)
                    try:
                        # every planned and written output: a renamed one never lands on
                        # its own planned name, so that one may stay in the set
                        taken.add(one(f, outs[f], f.name, lambda: control.cancel_requested,
                                      taken))
                        written += 1
                    except (ImageFileError, ModelMismatchError, ValueError) as e:
                        bad.append(str(e).splitlines()[0])
                        log.warning("enhance: skipped %s: %s", f, str(e).splitlines()[0])
                    fbar.update(1)
                control.progress(done=len(files))

        status = run_job(FunctionJob("batch enhance", batch), sig)
        if status.reason == FinishReason.CANCELLED:
            print(f"cancelled: {written} of {len(files)} images written into {dst}; "
                  f"{sig.name or 'cancel'} received (the image in progress was not written)")
            return sig.exit_code or 130
        if status.reason == FinishReason.FAILED:
            print(f"error: {status.message}")
            log.error("enhance: %s", status.message)
            return 2
        print(f"enhanced {written} of {len(files)} images into {dst}"
              + (f" ({ignored} non-image file(s) ignored)" if ignored else ""))
        _print_engine(enh)
        if bad:
            print(f"skipped {len(bad)} bad image(s):")
            for line in bad:
                print(f"  {line}")
            return 1
        return 0
    if dst.is_dir():  # an existing folder as output: keep the input's name inside it
        dst = output_name(src, dst)
    try:
        out = one(src, dst, None, lambda: sig.cancelled)
    except Cancelled:
        print(f"cancelled: {dst} not written; {sig.name} received")
        return sig.exit_code
    except (ImageFileError, ModelMismatchError) as e:
        print(f"error: {e}")
        log.error("enhance: %s", e)
        return 2
    print(f"{src} -> {out} (x{enh.scale:g})")
    _print_engine(enh)
    return 0


def _plan_outputs(files: list[Path], dst: Path) -> dict[Path, Path]:
    """Each input's output in ``dst``; a JPEG whose PNG name another input already has
    (a.jpg beside a.png) becomes a.jpg.png, so no output overwrites another."""
    from thinkscope_gui.learn.imageio import output_name

    outs = {f: output_name(f, dst) for f in files if f.suffix.lower() not in (".jpg", ".jpeg")}
    taken = set(outs.values())
    for f in files:
        if f not in outs:
            out = output_name(f, dst)
            outs[f] = dst / f"{f.name}.png" if out in taken else out
            taken.add(outs[f])
    return outs


def _print_engine(enh: object) -> None:
    """Say which engine ran the model: OpenVINO is optional (learn/engines.py)."""
    used = sorted(getattr(enh, "engines_used", ()))
    if used:
        print(f"engine: {'; '.join(used)}")
