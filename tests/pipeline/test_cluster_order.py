"""Tasks of one ``run_tasks`` call start in the order they were given."""

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
