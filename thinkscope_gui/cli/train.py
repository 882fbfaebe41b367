"""`main.py train`: train an enhancement model from pair stores, image folders or the
simulator, with a tqdm progress bar; the exact command is recorded in the model file.

`torchrun --nproc_per_node N main.py train ...` trains the same model with N processes
(DistributedDataParallel; rank 0 prints). SIGINT/SIGTERM cancel cleanly (exit 130/143)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from thinkscope_gui.learn.recipes import AUGMENT_RECIPES

if TYPE_CHECKING:
    from thinkscope_gui.cli.interrupt import SignalCancel
    from thinkscope_gui.learn.train import TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an enhancement model on matched pairs")
    p.add_argument("--store", action="append", default=[], metavar="PAIRS.h5",
                   help="HDF5 pair store from `main.py acquire` (repeatable)")
    p.add_argument("--pairs-dir", action="append", default=[], metavar="DIR",
                   help="folder with lr/ and hr/ images of the same names (repeatable)")
    p.add_argument("--sim-pairs", type=int, default=0, metavar="N",
                   help="add N simulator pairs rendered on the fly (development data)")
    p.add_argument("--sim-tissues", default="epithelium,lymphoid",
                   help="comma-separated simulator tissue regions for --sim-pairs")
    p.add_argument("--sim-tile", type=int, default=128, help="LR tile size of simulator pairs")
    p.add_argument("--arch", choices=["fast", "quality"], default="fast")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int, default=100, help="optimizer steps per epoch")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48, help="LR patch side")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    p.add_argument("--loss", choices=["l1", "mse"], default="l1")
    p.add_argument("--ssim-weight", type=float, default=0.0)
    p.add_argument("--grad-weight", type=float, default=0.0)
    p.add_argument("--fft-weight", type=float, default=0.0,
                   help="weight of the amplitude-spectrum L1 term (keeps fine periods from "
                   "being damped; the shipped quality model used 0.1); 0 = off")
    p.add_argument("--jitter", type=float, default=0.5,
                   help="per-channel affine intensity (exposure) augmentation strength; "
                   "0 = off (default 0.5: without it models break on another exposure)")
    p.add_argument("--augment", choices=AUGMENT_RECIPES, default="robust",
                   help="augmentation recipe: robust (stain, noise, JPEG, Bayer, defocus, "
                   "8 orientations; default), mild (the same, with noise/JPEG/Bayer on few "
                   "patches and no defocus), noisy (only LR noise, on half the patches) or "
                   "off (orientations and --jitter only)")
    p.add_argument("--minutes", type=float, default=None, metavar="M",
                   help="train for M minutes (ignores --epochs); the learning rate follows "
                   "a cosine over the budget and ends annealed")
    p.add_argument("--no-illumination-match", action="store_true",
                   help="keep smooth LR/HR brightness differences (vignetting, exposure)")
    p.add_argument("--schedule", choices=["cosine", "step"], default="cosine")
    p.add_argument("--patience", type=int, default=0, help="early stop after N flat epochs")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda (under torchrun each process takes cuda:LOCAL_RANK; "
                   "gloo on CPU and NCCL on CUDA are picked from it)")
    p.add_argument("--dist-timeout", type=float, default=600.0, metavar="S",
                   help="under torchrun: seconds one process may wait for the others "
                   "before the job fails")
    p.add_argument("--warm-start", metavar="MODEL", help="start from this model file")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt.safetensors")
    p.add_argument("--out", default="model.safetensors", help="output model file")
    p.add_argument("--checkpoint", metavar="CKPT", help="checkpoint file (default OUT.ckpt...)")
    p.add_argument("--arch-params", type=json.loads, default={}, metavar="JSON",
                   help='architecture overrides, e.g. \'{"feats": 32}\'')
    p.add_argument("--sim-seed", type=int, default=0, help="seed of the simulator pairs")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--max-val-tiles", type=int, default=16,
                   help="validation tiles scored per epoch (at most)")
    p.add_argument("--min-delta-db", type=float, default=0.01,
                   help="smallest validation gain (dB) that counts as improvement")


def command_line() -> str:
    """The command as typed, for the model's provenance record."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("main.py"):
        argv[0] = "main.py"
    return "python " + shlex.join(argv)


#: TrainConfig fields whose command-line flag is not simply --field-name
_FLAGS = {"stores": "--store", "folders": "--pairs-dir", "steps_per_epoch": "--steps",
          "batch_size": "--batch", "intensity_jitter": "--jitter"}


def _flag(field: str) -> str:
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the parsed flags describe (pydantic ValidationError if invalid)."""
    from thinkscope_gui.learn.train import TrainConfig

    return TrainConfig(
        stores=args.store, folders=args.pairs_dir, sim_pairs=args.sim_pairs,
        sim_tissues=[t for t in args.sim_tissues.split(",") if t], sim_tile=args.sim_tile,
        sim_seed=args.sim_seed, arch=args.arch, arch_params=args.arch_params,
        epochs=args.epochs, minutes=args.minutes, augment=args.augment,
        steps_per_epoch=args.steps, batch_size=args.batch,
        patch=args.patch, lr=args.lr, weight_decay=args.weight_decay, loss=args.loss,
        ssim_weight=args.ssim_weight, grad_weight=args.grad_weight, fft_weight=args.fft_weight,
        intensity_jitter=args.jitter, schedule=args.schedule, patience=args.patience,
        min_delta_db=args.min_delta_db, match_illumination=not args.no_illumination_match,
        val_fraction=args.val_fraction, max_val_tiles=args.max_val_tiles, seed=args.seed,
        threads=args.threads, device=args.device, warm_start=args.warm_start,
        resume=args.resume, out=args.out, checkpoint=args.checkpoint, command=command_line(),
    )


def train_command(cfg: TrainConfig, nproc_per_node: int = 1, python: str = "python") -> str:
    """The shell command that trains `cfg`, under torchrun when nproc_per_node > 1: how the
    GUI hands a job to a bigger machine or a cluster (see the README's SLURM example)."""
    from thinkscope_gui.learn.train import TrainConfig

    defaults = TrainConfig()
    argv: list[str] = []
    for name in TrainConfig.model_fields:
        value = getattr(cfg, name)
        if name == "command" or (value == getattr(defaults, name) and name != "out"):
            continue
        flag = _flag(name)
        if name in ("stores", "folders"):
            argv += [x for v in value for x in (flag, str(v))]
        elif name == "match_illumination":
            argv.append("--no-illumination-match")
        elif name == "resume":
            argv.append("--resume")
        elif name == "sim_tissues":
            argv += [flag, ",".join(value)]
        elif name == "arch_params":
            argv += [flag, json.dumps(value)]
        elif value is not None:
            argv += [flag, str(value)]
    launch = ([python, "main.py"] if nproc_per_node <= 1 else
              [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(nproc_per_node), "main.py"])
    return shlex.join([*launch, "train", *argv])


def _robust_line(h: dict[str, float]) -> str:
    """The robustness-set figures of one epoch (gain over bicubic, worst case)."""
    if "robust_min_gain_db" not in h:
        return ""
    held = (f", held-out tissue {h['heldout_gain_db']:+.2f} dB" if "heldout_gain_db" in h
            else "")
    if "otherstand_gain_db" in h:
        held += f", other stand {h['otherstand_gain_db']:+.2f} dB"
    return (f"; robustness set: gain {h.get('robust_gain_db', float('nan')):+.2f} dB, "
            f"worst {h['robust_min_gain_db']:+.2f} dB{held}")


def _missing_inputs(stores: list[str], folders: list[str]) -> str:
    """Why a --store or --pairs-dir cannot be read (empty when all can), before anything
    starts: a folder given as a store, or a file as a folder, is the usual mix-up."""
    for s in stores:
        p = Path(s)
        if p.is_dir():
            return (f"--store {s} is a folder; a pair store is the .h5 file `main.py acquire "
                    f"--out` writes (a folder of image pairs goes to --pairs-dir)")
        if not p.is_file():
            return f"--store {s}: no such pair store file"
    for f in folders:
        p = Path(f)
        if p.is_file():
            return (f"--pairs-dir {f} is a file, not a folder of image pairs"
                    + (" (a pair store goes to --store)" if p.suffix in (".h5", ".hdf5")
                       else ""))
        if not p.is_dir():
            return f"--pairs-dir {f}: no such folder"
    return ""


def run(args: argparse.Namespace) -> int:
    from thinkscope_gui.cli.interrupt import SignalCancel

    # the handlers go in before the heavy imports: a signal at any moment is a clean cancel
    cancels: list[Callable[[], None]] = []
    with SignalCancel(lambda: [c() for c in cancels]) as sig:
        return _run(args, sig, cancels)


def _run(args: argparse.Namespace, sig: SignalCancel, cancels: list[Callable[[], None]]) -> int:
    from pydantic import ValidationError
    from tqdm import tqdm

    from thinkscope_gui.learn.distributed import launch_rank
    from thinkscope_gui.learn.train import Trainer, TrainStatus

    try:
        cfg = config_from_args(args)
    except ValidationError as e:
        errors = "; ".join(f"{_flag(str(x['loc'][0]))}: {x['msg']}" for x in e.errors())
        print(f"train: invalid options: {errors}", file=sys.stderr)
        return 2
    if args.dist_timeout <= 0:
        print("train: --dist-timeout must be > 0 seconds", file=sys.stderr)
        return 2
    bad = _missing_inputs(cfg.stores, cfg.folders)
    if bad:
        print(f"train: {bad}", file=sys.stderr)
        return 2
    rank = launch_rank()
    main = rank == 0  # under torchrun only rank 0 shows progress and the summary
    bar = tqdm(total=cfg.epochs * cfg.steps_per_epoch if cfg.minutes is None else None,
               unit="step", dynamic_ncols=True, disable=not main)

    printed = [0]

    def on_event(st: TrainStatus) -> None:
        if not main:
            return
        done = max(st.epoch - 1, 0) * st.steps_per_epoch + st.step
        bar.update(max(done - bar.n, 0))
        post = {"ep": f"{st.epoch}/{st.epochs}"}
        if st.loss == st.loss:  # not NaN (before the first step)
            post["loss"] = f"{st.loss:.4f}"
        if st.metrics:
            post["val"] = f"{st.metrics['psnr']:.2f}dB"
            post["bicubic"] = f"{st.metrics['bicubic_psnr']:.2f}dB"
        bar.set_postfix(post, refresh=False)
        if len(st.history) > printed[0]:
            printed[0] = len(st.history)
            h = st.history[-1]
            if "psnr" in h:
                bar.write(f"epoch {h['epoch']}: PSNR {h['psnr']:.2f} dB (bicubic "
                          f"{h['bicubic_psnr']:.2f}), SSIM {h['ssim']:.4f} (bicubic "
                          f"{h['bicubic_ssim']:.4f})" + _robust_line(h))
            if st.robust_warning:
                bar.write(st.robust_warning, file=sys.stderr)

    trainer = Trainer(cfg, on_event, dist_timeout_s=args.dist_timeout)
    cancels.append(trainer.cancel)
    if sig.cancelled:  # a signal came while the CLI was still importing
        trainer.cancel()
    st = trainer.run()
    bar.close()
    speed = (f"; {st.samples_per_s:.1f} samples/s on {st.world_size} process"
             f"{'es' if st.world_size > 1 else ''}" if st.samples_per_s == st.samples_per_s
             else "")
    if st.state == "failed":
        prefix = f"rank {rank}: " if st.world_size > 1 else ""
        print(f"{prefix}failed: {st.message}", file=sys.stderr, flush=True)
        return 1
    if st.state == "cancelled":
        if main:
            ckpt = cfg.checkpoint_path()
            kept = (f"last good checkpoint {ckpt} (epoch {st.checkpoint_epoch})"
                    if st.checkpoint_epoch and ckpt.is_file() else "no checkpoint yet")
            psnr = f" (PSNR {st.best_psnr:.2f} dB)" if st.best_psnr == st.best_psnr else ""
            best = (f"best model {cfg.out}{psnr}" if Path(cfg.out).is_file()
                    else "no model written yet")
            where = (f"in epoch {st.epoch}/{st.epochs} after {st.step}/{st.steps_per_epoch} "
                     "steps" if st.epoch else "before training")
            print(f"cancelled by {sig.name or 'request'} {where}: {kept}; {best}; "
                  f"continue with --resume{speed}", flush=True)
        return sig.exit_code or 130
    if main and st.robust_warning:  # loud, and last, where it cannot be missed
        print(st.robust_warning, file=sys.stderr, flush=True)
    if main:
        late = (f" ({sig.name} arrived after the last step; nothing was lost)"
                if sig.cancelled else "")
        print(f"{st.state}: {st.message}{speed}{late}", flush=True)
        if st.out_path:
            print(f"model: {st.out_path}", flush=True)
    return 0
