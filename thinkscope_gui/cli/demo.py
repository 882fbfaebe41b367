"""`main.py demo`: the whole loop headless on the simulator — acquire, train briefly, enhance.

It proves the parts fit together on a fresh machine and prints the figures a reader needs
to judge the result: pairs stored, training metrics against bicubic, enhancement speed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="acquire, train briefly, enhance: headless on the simulator")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the pair store, model and images here (default: a temp folder)")
    p.add_argument("--grid", type=int, default=4, help="N for an NxN tile grid (default 4)")
    p.add_argument("--sensor", type=int, default=512, help="simulated sensor size (default 512)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs (default 4)")
    p.add_argument("--steps", type=int, default=60, help="steps per epoch (default 60)")
    p.add_argument("--cold", action="store_true",
                   help="train from scratch instead of warm-starting from the default model")


def _acquire(source: str, out: Path, grid: int, sensor: int) -> Any:
    from hardware import open_microscope
    from thinkscope_gui.pairs.engine import AcquisitionEngine
    from thinkscope_gui.pairs.plan import AcquisitionPlan

    plan = AcquisitionPlan(grid=(grid, grid), output=str(out))
    with open_microscope(source, sensor=(sensor, sensor)) as scope:
        last = [0.0]

        def progress(event: Any) -> None:
            st = event.status
            now = time.perf_counter()
            if event.kind in ("pair_stored", "pair_rejected", "finished") or now - last[0] > 5:
                last[0] = now
                print(f"  [{event.kind:13s}] {st.done}/{st.total} tiles, "
                      f"{st.accepted} accepted, {st.rejected} rejected", flush=True)

        return AcquisitionEngine(plan, scope, progress).run()


def _snap_40x(source: str, sensor: int) -> np.ndarray:
    from hardware import open_microscope

    with open_microscope(source, sensor=(sensor, sensor)) as scope:
        scope.set_objective("40x")
        return scope.snap()


def run(args: argparse.Namespace) -> int:
    from thinkscope_gui.learn import Enhancer, train_briefly
    from thinkscope_gui.learn.evaluate import evaluate_tissue
    from thinkscope_gui.learn.modelfile import DEFAULT_MODELS

    t_start = time.perf_counter()
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="thinkscope-demo-")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    store_path = workdir / "demo_pairs.h5"
    model_path = workdir / "demo_model.safetensors"
    store_path.unlink(missing_ok=True)
    try:
        print(f"1/3 acquire: {args.grid}x{args.grid} tiles, 40x then 100x, "
              f"{args.sensor}px sensor -> {store_path}", flush=True)
        t0 = time.perf_counter()
        status = _acquire(args.source, store_path, args.grid, args.sensor)
        t_acq = time.perf_counter() - t0
        if status.accepted == 0:
            print(f"demo: acquisition stored no usable pair ({status.message})", file=sys.stderr)
            return 1
        print(f"    {status.accepted} accepted, {status.rejected} rejected in {t_acq:.0f} s")

        default = DEFAULT_MODELS["fast"]
        warm = None if args.cold or not default.is_file() else str(default)
        print(f"2/3 train: fast model, {args.epochs} epochs x {args.steps} steps"
              f"{', warm start from the default model' if warm else ', from scratch'}", flush=True)
        t0 = time.perf_counter()

        reported: set[int] = set()

        def on_train(st: Any) -> None:
            if st.metrics and st.step == st.steps_per_epoch and st.epoch not in reported:
                reported.add(st.epoch)
                m = st.metrics
                print(f"    epoch {st.epoch}/{st.epochs}: loss {st.loss:.4f}  val PSNR "
                      f"{m.get('psnr', float('nan')):.2f} dB (bicubic "
                      f"{m.get('bicubic_psnr', float('nan')):.2f})", flush=True)

        tstat = train_briefly([store_path], epochs=args.epochs, out=model_path, arch="fast",
                              on_event=on_train, steps_per_epoch=args.steps, warm_start=warm,
                              # fine-tuning keeps what the default model learnt elsewhere
                              lr=5e-4 if warm else 2e-3,
                              val_fraction=0.34, command=" ".join(sys.argv))
        t_train = time.perf_counter() - t0
        if tstat.state == "failed" or not model_path.exists():
            print(f"demo: training failed: {tstat.message}", file=sys.stderr)
            return 1

        print("3/3 enhance: held-out stroma (a tissue the acquisition never visited) "
              "and a full 40x frame", flush=True)
        t0 = time.perf_counter()
        enh = Enhancer.load(model_path)
        unseen = evaluate_tissue(enh, "stroma", n=4)
        frame = _snap_40x(args.source, args.sensor)
        out = enh.enhance(frame)
        n, t1 = 0, time.perf_counter()
        while time.perf_counter() - t1 < 3.0:
            enh.enhance(frame)
            n += 1
        fps = n / (time.perf_counter() - t1)
        t_enh = time.perf_counter() - t0
        val = tstat.metrics
        print("\nThinkScope demo figures")
        print(f"  acquisition : {status.accepted} pairs accepted, {status.rejected} rejected "
              f"in {t_acq:.0f} s")
        print(f"  training    : {t_train:.0f} s, {tstat.state}; validation tiles (split by "
              f"position): model {val.get('psnr', float('nan')):.2f} dB / SSIM "
              f"{val.get('ssim', float('nan')):.3f}, bicubic "
              f"{val.get('bicubic_psnr', float('nan')):.2f} dB / "
              f"{val.get('bicubic_ssim', float('nan')):.3f}")
        print(f"  unseen tissue (stroma, vs noise-free 100x): model "
              f"{unseen['model_psnr_clean']:.2f} dB / {unseen['model_ssim_clean']:.3f}, bicubic "
              f"{unseen['bicubic_psnr_clean']:.2f} dB / {unseen['bicubic_ssim_clean']:.3f}")
        print(f"  enhance     : {frame.shape[1]}x{frame.shape[0]} -> {out.shape[1]}x"
              f"{out.shape[0]} (scale {enh.scale:g}), {fps:.1f} frames/s on {enh.device}")
        print(f"  total       : {time.perf_counter() - t_start:.0f} s "
              f"(enhance step {t_enh:.0f} s)")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()
