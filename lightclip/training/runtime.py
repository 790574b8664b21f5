"""Where the run executes: the device, the torchrun process group, torch's CPU threads, and
the small collectives every rank calls together."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from lightclip.trainconfig import RunConfig
from pipeline.base.configs import ConfigError


@dataclass
class DistInfo:
    """This process's place in the run: its rank among ``world_size``, its device and CPU threads."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    threads: int = 0  # torch CPU threads to hold (0: leave as found)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int) -> torch.device:
    """``run.device`` as a device: ``auto`` is the GPU when there is one; plain ``cuda`` is this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"run.device={name}: this machine has no GPU; use run.device=cpu or auto")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup_distributed(run: RunConfig) -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on GPU)."""
    if run.threads > 0:
        torch.set_num_threads(run.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(run.device, local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    return DistInfo(rank, world, local, device, torch.get_num_threads())


def end_distributed() -> None:
    """Leave the torchrun process group that :func:`setup_distributed` joined."""
    if dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.destroy_process_group()


def hold_threads(info: DistInfo) -> None:
    """Restore torch's CPU thread count: numba's OpenMP layer (the token matching) resets it,
    which would change float reduction order from one step to the next."""
    if info.threads and torch.get_num_threads() != info.threads:
        torch.set_num_threads(info.threads)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is True on any rank."""
    if info.world_size == 1:
        return flag
    tensor = torch.tensor([float(flag)], device=info.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def global_sum(value: int, info: DistInfo) -> int:
    """``value`` summed over every rank (each rank must call it)."""
    if info.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.all_reduce(tensor)
    return int(tensor.item())
