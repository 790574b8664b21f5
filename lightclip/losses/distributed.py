"""All-gather of embeddings across ranks (open_clip's gather-with-grad pattern)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn


def gather_embeddings(local: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Concatenate every rank's (n, D) rows into (world_size * n, D), rank order.

    Gradients flow back to each rank's own rows through the gather, so that summing
    per-rank losses gives the gradient of the global loss.
    """
    if world_size == 1:
        return local
    gathered = list(torch.distributed.nn.all_gather(local))
    if dist.get_rank() != rank:
        raise RuntimeError(f"rank {rank} was passed in, but this process is rank {dist.get_rank()}")
    return torch.cat(gathered, dim=0)
