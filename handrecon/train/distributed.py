"""Distributed training set-up from the environment torchrun creates (WORLD_SIZE, RANK, LOCAL_RANK).

``torchrun --nproc_per_node=N -m handrecon.cli train CONFIG --out DIR`` starts N processes; each calls
:func:`init_distributed`, which joins the process group (NCCL on CUDA, gloo on CPU) and picks the device
(``cuda:LOCAL_RANK`` on GPU). Without WORLD_SIZE (or with WORLD_SIZE=1) everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "shutdown_distributed", "all_reduce_sum", "all_reduce_min",
           "all_gather_object", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    """world_size, rank, local_rank of this process and its device; ``initialized`` = we made the group."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise RuntimeError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (if any) and choose this process's device.

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but CUDA is not available (use 'auto' or 'cpu')")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world, local = _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    if use_cuda:
        index = local % max(torch.cuda.device_count(), 1)
        torch.cuda.set_device(index)
        dev = torch.device("cuda", index)
    else:
        dev = torch.device("cpu")
    if world <= 1:
        return DistInfo(1, 0, 0, dev, False)
    made = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        made = True
    return DistInfo(dist.get_world_size(), dist.get_rank(), local, dev, made)


def shutdown_distributed(info: DistInfo) -> None:
    if info.initialized and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over processes, in place (a no-op on one process)."""
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_min(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def all_gather_object(obj, info: DistInfo) -> list:
    """[obj of rank 0, obj of rank 1, ...]; [obj] on one process."""
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
