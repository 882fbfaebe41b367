"""Background training: Trainer runs in a plain thread and reports frozen TrainStatus
snapshots through a callback (ui/ turns them into Qt signals; the CLI into tqdm).

Under torchrun the same Trainer is one rank of a DistributedDataParallel job (see
distributed.py): the global batch is split over the ranks, metrics are summed over them,
and rank 0 alone writes checkpoints and the model file.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import DataLoader

from thinkscope_gui.jobs import FinishReason, JobStatus, RunState

from .augment import augmentations_for
from .checkpoint import load_checkpoint, save_checkpoint
from .dataset import (
    PatchDataset,
    Tile,
    check_compatible,
    compute_normalisation,
    denormalise,
    load_tiles,
    normalise,
    split_by_tile,
)
from .distributed import (
    DistContext,
    ShardedPatches,
    all_sum,
    init_distributed,
    shutdown_distributed,
    wrap_model,
)
from .errors import TrainingError
from .meta import ModelMeta, Normalisation
from .metrics import fft_loss, gradient_loss, psnr, ssim
from .modelfile import load_model, save_model
from .models import bicubic, build_model
from .normalise import bits_divisor
from .recipes import AugmentRecipe
from .robustness import heldout_tiles, robust_tiles, robustness_metrics, robustness_warning
from .sources import FolderPairSource, PairSource, StorePairSource

State = Literal["idle", "loading", "training", "validating", "done", "stopped_early",
                "cancelled", "failed"]
FINAL_STATES = ("done", "stopped_early", "cancelled", "failed")
#: how each final training state ended, in the job runner's terms
_REASONS = {"done": FinishReason.COMPLETED, "stopped_early": FinishReason.COMPLETED,
            "cancelled": FinishReason.CANCELLED, "failed": FinishReason.FAILED}


class TrainConfig(BaseModel):
    """Everything that defines a training run (recorded in the model file)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    stores: list[str] = Field(default_factory=list)
    """HDF5 pair stores written by `main.py acquire`."""
    folders: list[str] = Field(default_factory=list)
    """Image folders, each with lr/ and hr/ subfolders holding files of the same names."""
    sim_pairs: int = Field(0, ge=0)
    """Number of simulator pairs rendered on the fly (development data); 0 = none."""
    sim_tissues: list[str] = Field(default_factory=lambda: ["epithelium", "lymphoid"])
    """Simulator tissue regions the simulator pairs are drawn from."""
    sim_tile: int = Field(128, ge=16)
    """LR tile side (px) of simulator pairs; must be at least the patch side."""
    sim_seed: int = 0
    """Seed choosing the simulator pair positions."""
    arch: Literal["fast", "quality"] = "fast"
    """Network: "fast" for live view, "quality" for stills and whole fields."""
    arch_params: dict[str, Any] = Field(default_factory=dict)
    """Architecture overrides (e.g. feats, layers); empty = the architecture's defaults."""
    epochs: int = Field(20, ge=1)
    """Number of epochs; each ends with a validation against bicubic upsampling."""
    minutes: float | None = Field(None, gt=0)
    """Time budget: train until it is spent (epochs is then ignored), the learning rate
    following a cosine over the budget so the run ends annealed; None = by epochs."""
    steps_per_epoch: int = Field(100, ge=1)
    """Optimizer steps per epoch."""
    batch_size: int = Field(16, ge=1)
    """Patches per optimizer step."""
    patch: int = Field(48, ge=8)
    """LR patch side in px; rounded down to a multiple of q (scale = p/q) so the HR patch
    side is integral."""
    lr: float = Field(2e-3, gt=0)
    """Peak learning rate of AdamW."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    schedule: Literal["cosine", "step"] = "cosine"
    """Learning-rate schedule over the whole run."""
    loss: Literal["l1", "mse"] = "l1"
    """Pixel loss in network space."""
    ssim_weight: float = Field(0.0, ge=0)
    """Weight of the (1 - SSIM) term added to the pixel loss; 0 = off."""
    grad_weight: float = Field(0.0, ge=0)
    """Weight of the image-gradient loss term; 0 = off."""
    fft_weight: float = Field(0.0, ge=0)
    """Weight of the amplitude-spectrum L1 term (metrics.fft_loss), which keeps fine
    periods from being damped; 0 = off."""
    intensity_jitter: float = Field(0.5, ge=0)
    """Strength of the per-channel affine intensity (exposure) augmentation; 0 = off.
    On by default: without it a 5 % brightness change makes a model worse than bicubic."""
    augment: AugmentRecipe = "robust"
    """Augmentation recipe (learn/augment.py): "robust" adds stain (HED), noise, JPEG,
    Bayer, defocus and the 8 orientations; "mild" the same with the camera degradations on
    few patches; "noisy" only LR noise, on half the patches; "off" keeps orientations and
    --jitter only."""
    match_illumination: bool = True
    """Remove smooth LR/HR gain differences (vignetting, exposure) before training."""
    val_fraction: float = Field(0.2, ge=0, lt=1)
    """Fraction of tile positions held out for validation (split by tile, never by patch)."""
    max_val_tiles: int = Field(16, ge=1)
    """At most this many validation tiles are scored each epoch (keeps epochs short)."""
    patience: int = Field(0, ge=0)
    """Stop after this many epochs without validation gain; 0 = never stop early."""
    min_delta_db: float = Field(0.01, ge=0)
    """Validation PSNR gains smaller than this (dB) do not count as improvement."""
    seed: int = 0
    """Seed of weights, split and patch sampling (runs are reproducible)."""
    warm_start: str | None = None
    """Model file to start from (transfer learning); None = random initialisation."""
    out: str = "model.safetensors"
    """Output model file; rewritten whenever validation improves."""
    checkpoint: str | None = None
    """Checkpoint file for --resume; None = OUT.ckpt.safetensors."""
    resume: bool = False
    """Continue from the checkpoint when it exists."""
    threads: int | None = Field(2, ge=1)
    """Torch CPU threads; None = leave torch's default."""
    device: str = "cpu"
    """Torch device to train on, e.g. "cpu" or "cuda" (under torchrun: cuda:LOCAL_RANK)."""
    command: str = ""
    """Command line that started the run (provenance, stored in the model file)."""

    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else Path(self.out + ".ckpt.safetensors")


@dataclass(frozen=True)
class TrainStatus:
    """Immutable progress snapshot, safe to hand across threads."""

    state: State = "idle"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    loss: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)   # last validation
    best_psnr: float = float("nan")
    eta_s: float = float("nan")
    message: str = ""
    out_path: str | None = None
    history: tuple[dict[str, float], ...] = ()
    world_size: int = 1                     # processes training this model (torchrun)
    samples_per_s: float = float("nan")     # training patches/s over all ranks (no warm-up)
    checkpoint_epoch: int = 0               # epoch of the last good checkpoint (0 = none)
    lr: float = float("nan")                # learning rate of the last step
    robust_warning: str = ""                # set when below bicubic on the robustness set


def budget_lr_factor(fraction: float, floor: float = 0.02) -> float:
    """Learning-rate factor of a time-budgeted run: a cosine from 1 at the start to
    ``floor`` (the epoch schedule's eta_min ratio) when the budget is spent, so a run
    stopped by the clock ends annealed rather than at its initial rate."""
    f = min(max(float(fraction), 0.0), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * f))


class TimeBudget:
    """Wall-clock budget of a --minutes run (the fraction spent drives the schedule)."""

    def __init__(self, minutes: float) -> None:
        self.seconds = float(minutes) * 60.0
        self.t0 = time.monotonic()

    def fraction(self) -> float:
        return (time.monotonic() - self.t0) / self.seconds

    def left_s(self) -> float:
        return max(self.seconds - (time.monotonic() - self.t0), 0.0)


def build_sources(config: TrainConfig) -> list[PairSource]:
    """Open every data source named in the config (none stays open if one fails)."""
    sources: list[PairSource] = []
    try:
        for p in config.stores:  # one by one, so a failure can close the earlier ones
            sources.append(StorePairSource(p))
        for p in config.folders:
            sources.append(FolderPairSource(p))
        if config.sim_pairs > 0:
            from .sim_source import SimPairSource

            sources.append(SimPairSource(config.sim_pairs, tissues=config.sim_tissues,
                                         tile=config.sim_tile, seed=config.sim_seed))
    except BaseException:
        for s in sources:
            close = getattr(s, "close", None)
            if close:
                close()
        raise
    if not sources:
        raise TrainingError("no training data: give --store, --pairs-dir or --sim-pairs")
    return sources


@torch.no_grad()
def validate(model: torch.nn.Module, tiles: Sequence[Tile], norm: Normalisation,
             scale: float, device: str = "cpu",
             ctx: DistContext | None = None) -> dict[str, float]:
    """Mean PSNR/SSIM of the model and of bicubic upsampling over whole validation tiles.

    Inside a torchrun job each rank scores tiles rank::world_size and the sums are
    reduced, so every rank gets the same means as one process scoring all tiles."""
    ctx = ctx or DistContext()
    tiles = list(tiles)[ctx.rank::ctx.world_size]
    model.eval()
    acc = {"psnr": 0.0, "ssim": 0.0, "bicubic_psnr": 0.0, "bicubic_ssim": 0.0}
    for t in tiles:
        x = torch.from_numpy(t.lr01().transpose(2, 0, 1).copy())[None].to(device)
        y = torch.from_numpy(t.hr01().transpose(2, 0, 1).copy())[None].to(device)
        pred = denormalise(model(normalise(x, norm)), norm).clamp(0, 1)
        bic = bicubic(x, scale).clamp(0, 1)
        h, w = min(pred.shape[-2], y.shape[-2]), min(pred.shape[-1], y.shape[-1])
        pred, bic, y = pred[..., :h, :w], bic[..., :h, :w], y[..., :h, :w]
        acc["psnr"] += psnr(pred, y)
        acc["ssim"] += float(ssim(pred, y))
        acc["bicubic_psnr"] += psnr(bic, y)
        acc["bicubic_ssim"] += float(ssim(bic, y))
    keys = list(acc)
    sums = all_sum([*(acc[k] for k in keys), len(tiles)], ctx, device)
    n = max(sums[-1], 1)
    out = {k: v / n for k, v in zip(keys, sums[:-1], strict=True)}
    out["gain_db"] = out["psnr"] - out["bicubic_psnr"]
    model.train()
    return out


class Trainer:
    """Train one model. run() blocks; start() runs it in a daemon thread; cancel() stops
    at the next step and keeps the best model written so far. It is also a job of
    :class:`thinkscope_gui.jobs.JobRunner` (no stand lease: training does not drive the
    microscope)."""

    name = "training"
    needs_stand = False
    scope = None

    def __init__(self, config: TrainConfig,
                 on_event: Callable[[TrainStatus], None] | None = None,
                 sources: Sequence[PairSource] | None = None,
                 dist_timeout_s: float = 600.0) -> None:
        """dist_timeout_s: under torchrun, the longest wait for the other processes in one
        collective before the job fails (a dead process is noticed at once; this bounds a
        hung one). Not part of TrainConfig: it shapes the job, not the model."""
        self.config = config
        self.dist_timeout_s = float(dist_timeout_s)
        self.on_event = on_event
        self._sources = list(sources) if sources is not None else None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = threading.Event()  # set when run() returns (start() or a JobRunner)
        self._running = False
        self._status = TrainStatus(epochs=config.epochs, steps_per_epoch=config.steps_per_epoch)
        self._last_emit = 0.0

    # -- control ------------------------------------------------------------------------
    @property
    def status(self) -> TrainStatus:
        return self._status

    def start(self) -> threading.Thread:
        """Train in the background (the GUI thread never blocks on data or compute)."""
        self._thread = threading.Thread(target=self.run, name="thinkscope-train", daemon=True)
        self._thread.start()
        return self._thread

    def cancel(self) -> None:
        self._cancel.set()

    def run_polled(self, cancel: Callable[[], bool] | None = None,
                   on_poll: Callable[[TrainStatus], None] | None = None,
                   poll_s: float = 0.5) -> TrainStatus:
        """Train in the background while this thread polls: ``cancel()`` true cancels the
        run, ``on_poll(status)`` sees its progress (a headless command's log); returns the
        final status. Why not :meth:`run`: a long run on this thread could not be
        cancelled by a signal handler's flag until it ended."""
        thread = self.start()
        while thread.is_alive():
            thread.join(poll_s)
            if cancel is not None and cancel():
                self.cancel()
            if on_poll is not None:
                on_poll(self._status)
        return self._status

    def job_status(self) -> JobStatus:
        """The runner's generic snapshot: steps done of all steps, ETA, how it ended."""
        st = self._status
        final = st.state in FINAL_STATES
        state = (RunState.FINISHED if final else RunState.IDLE if st.state == "idle"
                 else RunState.CANCELLING if self._cancel.is_set() else RunState.RUNNING)
        total = st.epochs * st.steps_per_epoch
        done = max(0, st.epoch - 1) * st.steps_per_epoch + st.step if st.epoch else 0
        eta = 0.0 if final else (st.eta_s if math.isfinite(st.eta_s) else None)
        return JobStatus(self.name, state, _REASONS.get(st.state), st.state, min(done, total),
                         total, 0.0, eta, st.message)

    def wait(self, timeout: float | None = None) -> TrainStatus:
        """Block until a run in the background (start() or a JobRunner) ends."""
        if self._thread is not None:
            self._thread.join(timeout)
        elif self._running:
            self._ended.wait(timeout)
        return self._status

    def _emit(self, force: bool = False, **changes: Any) -> None:
        self._status = replace(self._status, **changes)
        now = time.monotonic()
        if self.on_event and (force or now - self._last_emit > 0.2):
            self._last_emit = now
            self.on_event(self._status)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> TrainStatus:
        """Train to completion, early stop, cancel or failure; returns the final status."""
        self._running = True
        self._opened: list[PairSource] = []
        self._dist = DistContext()
        try:
            self._run()
        except Exception as e:  # reported, not raised: this usually runs in a thread
            msg = f"{type(e).__name__}: {e}"
            if self._dist.world_size > 1 and not isinstance(e, TrainingError):
                # typically a peer died and the collective broke: say where, and what is kept
                msg = (f"{msg} (one of the {self._dist.world_size} training processes stopped; "
                       f"the last good checkpoint {self.config.checkpoint_path()} is kept: "
                       "continue with --resume)")
            self._emit(force=True, state="failed", message=msg)
        finally:
            for s in self._opened:  # HDF5 files we opened ourselves
                close = getattr(s, "close", None)
                if close:
                    close()
            shutdown_distributed(self._dist)
            self._ended.set()
        return self._status

    def _run(self) -> None:
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        torch.manual_seed(cfg.seed)
        self._dist, device = init_distributed(cfg.device, self.dist_timeout_s)
        ctx = self._dist
        if cfg.batch_size % ctx.world_size:
            raise TrainingError(f"--batch {cfg.batch_size} is the global batch and must be a "
                                f"multiple of the {ctx.world_size} processes")
        self._emit(force=True, state="loading", message="reading pairs",
                   world_size=ctx.world_size)
        if self._sources is not None:
            sources = self._sources
        else:  # every rank opens the stores itself, read-only, in its own process
            sources = self._opened = build_sources(cfg)
        scale, channels = check_compatible(sources)
        tiles = load_tiles(sources, illumination=cfg.match_illumination)
        train_tiles, val_tiles = split_by_tile(tiles, cfg.val_fraction, cfg.seed)
        if not train_tiles:
            raise TrainingError("no training tiles after the split")
        val_tiles = val_tiles[: cfg.max_val_tiles]
        robust_sets = robust_tiles(val_tiles[:8], cfg.seed)
        heldout = heldout_tiles(cfg, sources)
        bit_depth = int(sources[0].bit_depth)
        divisor = bits_divisor(bit_depth)

        core, norm, warm = self._init_model(scale, channels, train_tiles, divisor)
        core.to(device).train()
        opt = torch.optim.AdamW(core.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = cfg.epochs * cfg.steps_per_epoch
        if cfg.schedule == "cosine":
            sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, cfg.lr * 0.02)
        else:
            sched = torch.optim.lr_scheduler.StepLR(
                opt, cfg.steps_per_epoch * max(1, cfg.epochs // 3), 0.3)

        start_epoch, best, history, since_best = 0, -math.inf, [], 0
        ckpt = cfg.checkpoint_path()
        if cfg.resume and ckpt.is_file():
            # every rank restores the same state; the global batch does not depend on the
            # number of processes, so a resume with another count continues the same run
            st = load_checkpoint(ckpt, core, opt, sched)
            start_epoch, best = int(st["epoch"]), float(st["best"])
            history, since_best = list(st["history"]), int(st["since_best"])
            self._emit(force=True, message=f"resumed from {ckpt} at epoch {start_epoch}",
                       checkpoint_epoch=start_epoch)
        model = wrap_model(core, ctx, device)

        augs = augmentations_for(cfg.augment, cfg.intensity_jitter)

        def patches(ts: list[Tile]) -> PatchDataset:
            return PatchDataset(ts, scale, norm, cfg.patch, cfg.steps_per_epoch * cfg.batch_size,
                                True, cfg.seed, cfg.intensity_jitter, augs)

        ds = ShardedPatches(train_tiles, patches, cfg.steps_per_epoch * cfg.batch_size, ctx,
                            cfg.seed)
        loader = DataLoader(ds, batch_size=cfg.batch_size // ctx.world_size,
                            sampler=ds.item_sampler())
        meta_base = dict(
            arch=cfg.arch, arch_params=dict(getattr(core, "arch_params", cfg.arch_params)),
            scale=scale, channels=channels, lr_profile=sources[0].lr_profile,
            hr_profile=sources[0].hr_profile,
            lr_pixel_size_um=sources[0].lr_profile.pixel_size_um,
            hr_pixel_size_um=sources[0].hr_profile.pixel_size_um, bit_depth=bit_depth,
            normalisation=norm,
            data_fingerprint=hashlib.sha256(
                "|".join(s.fingerprint() for s in sources).encode()).hexdigest(),
            data_sources=[s.name for s in sources],
            command=cfg.command or f"Trainer({cfg.model_dump_json()})",
            train_config=cfg.model_dump(exclude={"command"}), warm_start_from=warm,
            world_size=ctx.world_size, augmentations=augs.as_dict(),
        )
        # all ranks agree before the first step (a signal during loading cancels them all)
        if all_sum([self._cancel.is_set()], ctx, device)[0]:
            self._emit(force=True, state="cancelled", message="cancelled while loading")
            return
        t0, done_steps = time.monotonic(), 0
        timed_s, timed_steps = 0.0, 0
        n_epochs = cfg.epochs if cfg.minutes is None else 10**9  # a budget ends by time
        remaining = (n_epochs - start_epoch) * cfg.steps_per_epoch
        budget = TimeBudget(cfg.minutes) if cfg.minutes is not None else None
        self._emit(force=True, state="training", epoch=start_epoch, message="training")
        for epoch in range(start_epoch, n_epochs):
            ds.set_epoch(epoch)
            t_step = time.perf_counter()
            for step, (x, y) in enumerate(loader):
                loss, stop = self._step(model, opt, x.to(device), y.to(device), norm, device)
                if stop:
                    self._emit(force=True, state="cancelled", epoch=epoch + 1, step=step,
                               message="cancelled; best model so far kept",
                               out_path=cfg.out if Path(cfg.out).is_file() else None)
                    return
                if not math.isfinite(loss):
                    self._emit(force=True, state="failed", loss=loss,
                               message=f"training diverged: loss is {loss} at epoch {epoch + 1} "
                               f"step {step + 1}; lower the learning rate (now {cfg.lr:g}) "
                               "or check the pairs for saturated or empty tiles")
                    return
                spent = False
                if budget is None:
                    sched.step()
                else:  # the schedule follows the clock (every rank the same fraction)
                    frac = all_sum([budget.fraction()], ctx, device)[0] / ctx.world_size
                    spent = frac >= 1.0
                    for g in opt.param_groups:
                        g["lr"] = cfg.lr * budget_lr_factor(frac)
                done_steps += 1
                now = time.perf_counter()
                if done_steps > 1:  # the first step is warm-up (allocations, autotune)
                    timed_s, timed_steps = timed_s + now - t_step, timed_steps + 1
                t_step = now
                rate = (time.monotonic() - t0) / done_steps
                self._emit(epoch=epoch + 1, step=step + 1, loss=loss,
                           lr=float(opt.param_groups[0]["lr"]),
                           eta_s=rate * (remaining - done_steps) if budget is None
                           else budget.left_s(),
                           samples_per_s=timed_steps * cfg.batch_size / timed_s
                           if timed_s > 0 else float("nan"))
                if spent:
                    break
            self._emit(force=True, state="validating")
            metrics = (validate(core, val_tiles, norm, scale, device, ctx)
                       if val_tiles else {})
            metrics.update(robustness_metrics(
                lambda ts: validate(core, ts, norm, scale, device, ctx), robust_sets, heldout))
            warning = robustness_warning(metrics) or ""
            score = metrics.get("psnr", -float(self._status.loss))
            history.append({"epoch": epoch + 1, "loss": self._status.loss, **metrics})
            improved = score > best + (cfg.min_delta_db if math.isfinite(best) else 0.0)
            if improved:
                best, since_best = score, 0
                if ctx.is_main:
                    meta = ModelMeta(**meta_base, metrics=metrics, epochs=epoch + 1)
                    save_model(copy.deepcopy(core).cpu(), meta, cfg.out)
            else:
                since_best += 1
            if ctx.is_main:  # atomic (tmp + rename): a kill mid-write keeps the previous one
                save_checkpoint(ckpt, core, opt, sched, {"epoch": epoch + 1, "best": best,
                                                         "history": history,
                                                         "since_best": since_best,
                                                         "world_size": ctx.world_size})
            self._emit(force=True, state="training", metrics=metrics, history=tuple(history),
                       best_psnr=metrics.get("psnr", float("nan")) if improved
                       else self._status.best_psnr, out_path=cfg.out,
                       checkpoint_epoch=epoch + 1, robust_warning=warning)
            if budget is not None and spent:
                break
            if cfg.patience and since_best >= cfg.patience:
                self._emit(force=True, state="stopped_early",
                           message=f"no validation gain for {since_best} epochs; stopped")
                return
        self._emit(force=True, state="done", eta_s=0.0, message=f"saved {cfg.out}")

    def _init_model(self, scale: float, channels: int, tiles: Sequence[Tile],
                    divisor: float) -> tuple[torch.nn.Module, Normalisation, str | None]:
        cfg = self.config
        if not cfg.warm_start:
            model = build_model(cfg.arch, channels, scale, cfg.arch_params)
            return model, compute_normalisation(tiles, divisor), None
        model, meta = load_model(cfg.warm_start)
        if meta.arch != cfg.arch or meta.channels != channels or abs(meta.scale - scale) > 1e-6:
            raise TrainingError(
                f"warm start {cfg.warm_start} is {meta.arch}/{meta.channels} channels/scale "
                f"{meta.scale:g}; this run needs {cfg.arch}/{channels} channels/scale {scale:g}")
        model.arch_params = meta.arch_params  # type: ignore[assignment]
        # keep the warm model's normalisation: its weights were learned in that space
        return model, meta.normalisation.model_copy(update={"divisor": divisor}), cfg.warm_start

    def _step(self, model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor, norm: Normalisation, device: str = "cpu") -> tuple[float, bool]:
        """One optimizer step; returns (loss averaged over ranks, stop requested).

        Inside a job the ranks exchange loss and cancel flag before backward, so they all
        cancel, or all skip a diverged step, at the same step (a lone rank would hang in
        DDP's gradient all-reduce)."""
        cfg = self.config
        ctx = self._dist
        if not ctx.enabled and self._cancel.is_set():
            return float("nan"), True
        pred = model(x)
        loss = F.l1_loss(pred, y) if cfg.loss == "l1" else F.mse_loss(pred, y)
        if cfg.ssim_weight:
            loss = loss + cfg.ssim_weight * (1 - ssim(denormalise(pred, norm),
                                                      denormalise(y, norm)))
        if cfg.grad_weight:
            loss = loss + cfg.grad_weight * gradient_loss(pred, y)
        if cfg.fft_weight:
            loss = loss + cfg.fft_weight * fft_loss(pred, y)
        loss_sum, stops = all_sum([float(loss.detach()), self._cancel.is_set()], ctx, device)
        if stops:
            return float("nan"), True
        value = loss_sum / ctx.world_size
        if not math.isfinite(value):
            return value, False
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return value, False


def train_briefly(store_paths: Sequence[str | Path] = (), epochs: int = 2,
                  out: str | Path = "demo_model.safetensors", arch: str = "fast",
                  on_event: Callable[[TrainStatus], None] | None = None,
                  **overrides: Any) -> TrainStatus:
    """Demo helper: a short blocking training run on the given pair stores (or, with
    sim_pairs=N in overrides, on simulator pairs)."""
    cfg = TrainConfig(stores=[str(p) for p in store_paths], epochs=epochs, out=str(out),
                      arch=arch, **overrides)
    return Trainer(cfg, on_event).run()
