"""One loader reader (a rank's DataLoader worker): who it is, where it stands in the epoch,
and how many samples it lost, counted against ``data.max_skipped_fraction``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pipeline.base.errors import UserError

log = logging.getLogger("pipeline.stream")  # the loader logs under one name


def reader_quota(num_batches: int, reader: int, readers: int) -> int:
    """Batches of logical reader ``reader`` out of ``num_batches`` dealt round-robin."""
    return num_batches // readers + (1 if reader < num_batches % readers else 0)


@dataclass
class ReaderState:
    """Where one reader (rank, logical worker) stands within an epoch."""

    drawn: int = 0  # samples taken out of the shuffle buffer (skipped ones included)
    batches: int = 0  # batches emitted
    skipped: int = 0  # corrupt or incomplete samples dropped


@dataclass
class ReaderContext:
    """Everything a reader's stages need: identity, epoch, seed, quota, start position."""

    rank: int
    world_size: int
    worker: int
    workers: int
    epoch: int
    seed: int
    quota: int
    start: ReaderState
    state: ReaderState = field(default_factory=ReaderState)
    tar_samples: int = 0
    expected: dict[str, int] = field(default_factory=dict)  # url -> recorded sample count
    skip_budget: float = float("inf")  # skipped samples allowed this epoch
    current_url: str = ""  # the shard being read
    shard_samples: int = 0  # samples read so far from the current shard

    @property
    def where(self) -> str:
        return f"rank {self.rank} worker {self.worker}"

    @property
    def replaying(self) -> bool:
        """True while resuming re-reads samples already accounted for before the checkpoint."""
        return self.state.drawn < self.start.drawn


class DataLossError(UserError, RuntimeError):
    """More samples were lost than ``data.max_skipped_fraction`` allows."""


def check_skip_budget(ctx: ReaderContext) -> None:
    if ctx.state.skipped > ctx.skip_budget:
        raise DataLossError(
            f"{ctx.where} lost {ctx.state.skipped} samples this epoch, more than "
            f"data.max_skipped_fraction allows ({int(ctx.skip_budget)}): run `python -m pipeline verify "
            "<shard folder>` and rebuild the damaged shards, or raise data.max_skipped_fraction"
        )


class SkipCounter:
    """An error handler that logs each error, counts it and lets the stream continue.

    ``tar_level``: errors of the tar reader. Those are not counted when the current shard's
    sample count is recorded: its shortfall is (see :func:`account_shard`), so a cut shard
    counts every lost sample exactly once.
    """

    def __init__(self, ctx: ReaderContext, tar_level: bool = False):
        self.ctx = ctx
        self.tar_level = tar_level

    def __call__(self, exn: BaseException) -> bool:
        ctx = self.ctx
        if isinstance(exn, DataLossError):
            raise exn
        if ctx.replaying or (self.tar_level and ctx.current_url in ctx.expected):
            log.warning("%s: %s", ctx.where, exn)
            return True
        ctx.state.skipped += 1
        if ctx.state.skipped <= 10 or ctx.state.skipped % 100 == 0:
            log.warning("%s: skipped sample (%d so far): %s", ctx.where, ctx.state.skipped, exn)
        check_skip_budget(ctx)
        return True


def account_shard(ctx: ReaderContext, url: str) -> None:
    """After a shard was read to its end: count the samples it lacks against its recorded count."""
    expected = ctx.expected.get(url)
    if expected is None or ctx.shard_samples >= expected or ctx.replaying:
        return
    lost = expected - ctx.shard_samples
    ctx.state.skipped += lost
    log.warning(
        "%s: %s holds %d of its %d samples: %d lost (damaged shard? see `python -m pipeline verify`)",
        ctx.where,
        url,
        ctx.shard_samples,
        expected,
        lost,
    )
    check_skip_budget(ctx)
