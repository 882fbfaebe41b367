"""Resumable training checkpoints as safetensors (never pickle): model and optimizer
tensors flattened by name, everything else (epoch, history, param groups) as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .errors import ModelFileError
from .modelfile import _atomic_save, read_tensors

CKPT_KEY = "thinkscope_checkpoint"


def save_checkpoint(path: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    sched: Any, state: dict[str, Any]) -> Path:
    """Everything needed to continue exactly where training stopped."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in osd["state"].items():
        for name, val in pstate.items():
            if torch.is_tensor(val):
                tensors[f"opt.{pid}.{name}"] = val
            else:
                scalars.setdefault(str(pid), {})[name] = val
    header = {
        "param_groups": osd["param_groups"],
        "opt_scalars": scalars,
        "sched": sched.state_dict() if sched is not None else None,
        "state": state,
    }
    path = Path(path)
    _atomic_save(tensors, {CKPT_KEY: json.dumps(header, default=float)}, path)
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    sched: Any) -> dict[str, Any]:
    """Restore in place; returns the saved training state (epoch, best, history...)."""
    tensors, meta = read_tensors(path)
    if CKPT_KEY not in meta:
        raise ModelFileError(f"{path} is not a ThinkScope training checkpoint")
    header = json.loads(meta[CKPT_KEY])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ostate: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            ostate.setdefault(int(pid), {})[name] = v
    for pid, sc in header["opt_scalars"].items():
        ostate.setdefault(int(pid), {}).update(sc)
    opt.load_state_dict({"state": ostate, "param_groups": header["param_groups"]})
    if sched is not None and header.get("sched"):
        sched.load_state_dict(header["sched"])
    return header["state"]
