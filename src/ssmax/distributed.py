"""Several training processes (`torchrun --nproc_per_node N -m ssmax run ...`): the process group,
this process's share of each batch, and the collectives `train` needs.

Launched by torchrun (WORLD_SIZE > 1 in the environment), `setup` joins the process group: gloo
on CPU, nccl on CUDA with LOCAL_RANK as this process's GPU. Every rank draws the same global
batch from the same seeded sampler and trains on its own equal slice of it; DistributedDataParallel
averages the gradients, so N processes take the steps one process takes on the whole batch. Rank
0 alone evaluates and writes (checkpoints, weights, results); `barrier` keeps the other ranks from
reading a file before it is written. Without torchrun none of this runs: one process stays the
default, and its numbers are bit-identical to a build without this module.
"""

from __future__ import annotations

import atexit
import os
from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .device import pick_device


def launched_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer (torchrun sets it); got {value!r}") from None


def setup(device: str = "auto") -> None:
    """Join the process group if torchrun launched several processes and none is joined yet
    (idempotent; a single process does nothing). Left at exit."""
    if launched_world_size() <= 1 or dist.is_initialized():
        return
    if pick_device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    atexit.register(_teardown)


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True on the process that evaluates and writes (rank 0, or the only process)."""
    return rank() == 0


def from_main(value):
    """Rank 0's value of a (picklable) object on every rank: decisions taken on rank 0's
    evaluation, such as a learning-rate ladder's next step, must be the same everywhere."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def check_batch_size(batch_size: int, processes: Optional[int] = None) -> int:
    """The per-process batch; the global batch must split evenly across the processes."""
    processes = world_size() if processes is None else processes
    if batch_size % processes:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by the number of processes ({processes})")
    return batch_size // processes


def local_share(*tensors: Optional[Tensor]) -> tuple[Optional[Tensor], ...]:
    """This rank's contiguous, equal slice (along the batch dimension) of each global-batch tensor."""
    n = world_size()
    if n == 1:
        return tensors
    r = rank()
    return tuple(None if t is None else t[r * (len(t) // n):(r + 1) * (len(t) // n)] for t in tensors)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to train: itself in a single process, else a DistributedDataParallel wrapper
    (which averages gradients across ranks during backward). Wrap again after adding parameters."""
    if world_size() == 1:
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def global_mean(value: Tensor) -> Tensor:
    """The mean of a scalar over all ranks (the loss of the whole global batch); in a single
    process, the value itself."""
    if world_size() == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / world_size()
