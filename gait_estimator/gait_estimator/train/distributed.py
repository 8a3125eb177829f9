"""Data-parallel training under ``torchrun``: process group, sharding rule, reductions.

``torchrun --nproc-per-node N -m gait_estimator.cli.main train ...`` starts N processes with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`train_model` then wraps the network in
``DistributedDataParallel`` (gloo on CPU, NCCL on CUDA, one GPU per local rank). The results
contract is the single-process one, by construction:

- every global batch is the one a single process would draw (same seed, same permutation);
  rank r trains on its rows ``r::N`` and scales its summed loss so that DDP's gradient
  average equals the gradient of the whole batch's mean loss (exact up to float summation
  order, also for a last batch that does not split evenly);
- losses and validation are summed over ranks, so every rank sees the same history and makes
  the same early-stopping and learning-rate decisions, and ends with the same weights;
- rank 0 alone writes the run directory (config, logs, checkpoints, ``model.pt``); the others
  wait for it and return the same result pointing at that file (multi-node runs need the run
  directory on shared storage).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gait_estimator.errors import ConfigError

__all__ = ["Distributed", "current", "setup", "shutdown"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (``world == 1``: plain single-process training)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def primary(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks (float64 on the CPU; gloo and NCCL both reduce it)."""
        if not self.active:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return t.cpu().tolist()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def current() -> Distributed:
    """The job layout from torchrun's environment variables (single process when absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        value = os.environ.get("WORLD_SIZE")
        raise ConfigError("WORLD_SIZE/RANK/LOCAL_RANK", value, f"not integers: {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise ConfigError("RANK", rank, f"must be in [0, WORLD_SIZE={world})")
    return Distributed(rank, world, local)


def setup(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun prepared (once per process); the device of this rank."""
    ctx = current()
    if not ctx.active:
        return ctx, device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def shutdown() -> None:
    """Leave the process group (end of the job; safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
