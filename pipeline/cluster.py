"""Everything Dask: the client (LocalCluster or an existing scheduler), table reading, task runs.

The functions the tasks call are plain Python (tested without a cluster); this module only
submits them, shows progress and gathers results.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipeline import metadata

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
LEAN_WORKER = "pipeline.lean_worker"
QUIET_WORKER = "pipeline.worker_signals"


@dataclass
class ClusterConfig:
    """``address`` (or ``$DASK_SCHEDULER_ADDRESS``) joins an existing scheduler; otherwise a
    LocalCluster with ``n_workers`` processes (0 = one per core) of ``threads_per_worker``.
    ``processes: false`` keeps the workers as threads of this process. ``lean_workers``: the
    LocalCluster's worker processes refuse to import torch and scipy.stats
    (:mod:`pipeline.lean_worker`; the same output, seconds less start-up and exit).
    ``log_level``: Dask's own logging (``info`` prints some 35 lines per LocalCluster start
    and stop)."""

    address: str = ""  # scheduler to join, e.g. tcp://host:8786 (empty: a LocalCluster)
    n_workers: int = 0  # LocalCluster worker processes (0: one per core)
    threads_per_worker: int = 1  # threads in each LocalCluster worker
    processes: bool = True  # false: workers are threads of this process
    lean_workers: bool = True  # LocalCluster workers refuse to import torch and scipy.stats
    memory_limit: str = "auto"  # per LocalCluster worker, e.g. 4GB
    dashboard_address: str = ":8787"  # Dask dashboard (empty: off)
    log_level: str = "warning"  # Dask's own logging level


def scheduler_address(config: ClusterConfig) -> str:
    return config.address or os.environ.get(SCHEDULER_ENV, "")


@contextmanager
def open_client(config: ClusterConfig, log: Callable[[str], None] = print) -> Iterator[Any]:
    """A ``distributed.Client``; a LocalCluster it started is closed on exit."""
    with dask_log_level(config.log_level):
        yield from _client(config, log)


@contextmanager
def dask_log_level(level: str) -> Iterator[None]:
    """Dask's loggers at ``level`` here and in worker processes started meanwhile."""
    import distributed  # noqa: F401 - sets its loggers' levels on import; restored after us

    logger, variable = logging.getLogger("distributed"), "DASK_LOGGING__DISTRIBUTED"
    old_level, old_env = logger.level, os.environ.get(variable)
    logger.setLevel(level.upper())
    os.environ[variable] = level.lower()
    try:
        yield
    finally:
        logger.setLevel(old_level)
        if old_env is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = old_env


def _client(config: ClusterConfig, log: Callable[[str], None]) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    address = scheduler_address(config)
    if address:
        client = Client(address)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=config.n_workers or os.cpu_count() or 1,
            threads_per_worker=config.threads_per_worker,
            processes=config.processes,
            memory_limit=config.memory_limit,
            dashboard_address=config.dashboard_address or None,
            preload=_preloads(config),
        )
        client = Client(cluster)
    link = getattr(client, "dashboard_link", None)
    log(
        f"Dask: {client.scheduler.address} with {len(client.scheduler_info()['workers'])} "
        f"workers; dashboard {link or 'off'}"
    )
    try:
        yield client
    finally:
        if cluster is not None:
            quiet_shutdown(client)
        client.close()
        if cluster is not None:
            cluster.close()


def _preloads(config: ClusterConfig) -> list[str]:
    """Modules each LocalCluster worker process runs as it starts (none for thread workers)."""
    if not config.processes:
        return []
    return [QUIET_WORKER, *([LEAN_WORKER] if config.lean_workers else [])]


def silence_distributed_logs() -> None:
    """Dask's loggers in this process at CRITICAL only."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def quiet_shutdown(client: Any) -> None:
    """Silence the workers of a cluster about to be closed: a worker whose heartbeat races the
    scheduler's shutdown logs a harmless ``CommClosedError`` traceback (dask/distributed#7105)."""
    try:
        client.run(silence_distributed_logs)
    except Exception:  # noqa: BLE001 - a worker already gone has nothing left to say
        pass


def read_table(config: metadata.MetadataConfig) -> list[Any]:
    """The metadata file as a list of delayed pandas partitions, in file order."""
    import dask.dataframe as dd

    fmt = metadata.resolve_format(config)
    if fmt in metadata.LINE_FORMATS:  # bad lines and .gz handled row by row in pipeline.metadata
        from dask import delayed

        blocks = metadata.plan_blocks(config.path, fmt, config.blocksize, config)
        return [delayed(metadata.read_block)(block) for block in blocks]
    return list(dd.read_parquet(config.path).to_delayed())


def run_tasks(
    client: Any, calls: Sequence[tuple[Callable[..., Any], tuple]], description: str, progress: bool = True
) -> list[Any]:
    """Run every ``function(*args)`` on the cluster; results in input order.

    Tasks start in input order (Dask would otherwise order independent tasks by their random
    keys). Arguments may be dask delayed objects (computed on the workers first). A task's
    error is raised here, after the bar shows how far the run got.
    """
    import dask
    from dask import delayed
    from distributed import as_completed

    if not calls:
        return []
    tasks = []
    for position, (function, args) in enumerate(calls):
        with dask.annotate(priority=-position):
            tasks.append(delayed(function, pure=False)(*args))
    futures = client.compute(tasks)
    index = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    bar = _bar(len(futures), description, progress)
    try:
        for future in as_completed(futures):
            results[index[future.key]] = future.result()
            bar.update(1)
    finally:
        bar.close()
    return results


def _bar(total: int, description: str, enabled: bool):
    from pipeline.base.progress import progress_bar  # whole lines, not carriage returns, in a log

    return progress_bar(total=total, desc=description, unit="task", disable=not enabled, dynamic_ncols=True)
