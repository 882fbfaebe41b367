"""torch.distributed plumbing for training under torchrun (one model, N processes).

Nothing home-made: the process group is torch's own (gloo on CPU, NCCL on CUDA, picked from
the training device), gradients are averaged by DistributedDataParallel, and the data is
sharded with DistributedSampler. Outside torchrun every function here is a no-op, so the
same Trainer code runs in one process, in the GUI's worker thread, or on N ranks.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from .dataset import PatchDataset, Tile
from .errors import TrainingError

#: what torchrun (and any torch.distributed launcher) sets in every worker's environment
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: diagnostic: a folder where each rank appends the training tiles it owns per epoch
SHARD_LOG_ENV = "THINKSCOPE_SHARD_LOG"


def launched_by_torchrun() -> bool:
    """True inside a worker started by torchrun (or another torch.distributed launcher)."""
    return all(k in os.environ for k in LAUNCH_VARS)


def launch_rank() -> int:
    """This process's global rank as the launcher set it (0 outside torchrun): known
    before the process group exists, so the CLI can decide who prints."""
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job; the default is a plain single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        """A process group is up (also for a torchrun job of one process)."""
        return bool(self.backend)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only writer of checkpoints and model files, and the one that talks."""
        return self.rank == 0


def init_distributed(device: str, timeout_s: float) -> tuple[DistContext, str]:
    """Join the torchrun job if there is one; returns the context and this rank's device.

    CUDA training gives each local rank its own GPU (cuda:LOCAL_RANK) and NCCL; anything
    else uses gloo. timeout_s bounds every collective, so a peer that hangs (rather than
    dies, which gloo notices at once) ends the job with an error instead of forever.
    """
    if not launched_by_torchrun():
        return DistContext(), device
    local = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {device} asked for, but CUDA is not available")
        if local >= torch.cuda.device_count():
            raise TrainingError(f"local rank {local} has no GPU: this machine has "
                                f"{torch.cuda.device_count()}; lower --nproc_per_node")
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=float(timeout_s)))
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=local, backend=backend), device


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group (never raises: it runs while a failure is reported)."""
    if ctx.enabled and dist.is_initialized():
        with contextlib.suppress(Exception):  # a dead peer must not mask the real error
            dist.destroy_process_group()


def all_sum(values: Sequence[float], ctx: DistContext, device: str) -> list[float]:
    """Element-wise sum of `values` over all ranks (the values themselves outside a job)."""
    if not ctx.enabled:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def wrap_model(model: torch.nn.Module, ctx: DistContext, device: str) -> torch.nn.Module:
    """DistributedDataParallel around the model inside a job (it broadcasts rank 0's
    weights at construction and averages gradients in backward); the model itself outside."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


class ShardedPatches(Dataset):
    """Random training patches whose tiles are sharded over the ranks.

    Each epoch, a DistributedSampler over the training tiles deals every rank a disjoint
    share of one seeded permutation (the same permutation whatever the number of ranks;
    with drop_last the few tiles that do not divide evenly sit that epoch out). Global item
    idx of an epoch is patch idx of tile ``perm[idx mod n]``, drawn with the generator of
    (seed, epoch, idx); a DistributedSampler over the items gives rank r the items
    r, r+N, r+2N...; these are exactly the items whose tiles rank r owns. So per-rank
    batches of B/N items together form the same global batch of B items that one process
    draws, and N processes train the same run as one (up to float summation order).
    """

    def __init__(self, tiles: Sequence[Tile], make: Callable[[list[Tile]], PatchDataset],
                 length: int, ctx: DistContext, seed: int) -> None:
        if len(tiles) < ctx.world_size:
            raise TrainingError(f"{len(tiles)} training tiles cannot be shared by "
                                f"{ctx.world_size} processes; use fewer processes or more data")
        self.tiles = list(tiles)
        self.per_tile = [make([t]) for t in self.tiles]
        self.length = int(length)
        self.ctx = ctx
        tile_ids: Any = range(len(self.tiles))  # a Sized sequence is all the sampler uses
        self.tile_sampler: DistributedSampler[int] = DistributedSampler(
            tile_ids, ctx.world_size, ctx.rank, shuffle=True, seed=seed, drop_last=True)
        self.mine: list[int] = list(self.tile_sampler)

    def item_sampler(self) -> DistributedSampler:
        """This rank's items (r::N of the epoch's global items, in order)."""
        return DistributedSampler(self, self.ctx.world_size, self.ctx.rank, shuffle=False)

    def set_epoch(self, epoch: int) -> None:
        self.tile_sampler.set_epoch(epoch)
        self.mine = list(self.tile_sampler)
        for ds in self.per_tile:
            ds.set_epoch(epoch)
        log = os.environ.get(SHARD_LOG_ENV)
        if log:
            rec = {"rank": self.ctx.rank, "world_size": self.ctx.world_size, "pid": os.getpid(),
                   "epoch": int(epoch), "tiles": [list(map(str, self.tiles[i].key))
                                                  for i in self.mine]}
            path = Path(log) / f"rank{self.ctx.rank}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(json.dumps(rec) + "\n")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = (int(idx) // self.ctx.world_size) % len(self.mine)
        return self.per_tile[self.mine[k]][int(idx)]
