"""Tasks of one ``run_tasks`` call start in the order they were given; workers closed quietly."""

from __future__ import annotations

import time

from pipeline.cluster import ClusterConfig, open_client, run_tasks


def started_at(index: int) -> tuple[int, float]:
    start = time.perf_counter()
    time.sleep(0.01)
    return index, start


def test_one_worker_runs_tasks_in_input_order():
    config = ClusterConfig(n_workers=1, processes=False, dashboard_address="")
    with open_client(config, log=lambda _: None) as client:
        results = run_tasks(client, [(started_at, (i,)) for i in range(16)], "order", progress=False)
    assert [i for i, _ in results] == list(range(16))  # results in input order
    assert [i for i, _ in sorted(results, key=lambda r: r[1])] == list(range(16))  # and run so


def worker_log_level() -> int:
    import logging

    return logging.getLogger("distributed").level


def test_workers_are_silenced_before_a_local_cluster_closes():
    from pipeline.cluster import quiet_shutdown

    config = ClusterConfig(n_workers=1, processes=True, dashboard_address="")
    with open_client(config, log=lambda _: None) as client:
        before = set(client.run(worker_log_level).values())
        quiet_shutdown(client)
        after = set(client.run(worker_log_level).values())
    assert before != {50} and after == {50}  # CRITICAL
