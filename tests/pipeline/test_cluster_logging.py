"""A LocalCluster start and stop prints only the toolkit's own line unless Dask's log level is raised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import logging, sys
from pipeline.cluster import ClusterConfig, open_client
if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)  # an application that logs INFO itself
    config = ClusterConfig(n_workers=1, dashboard_address=":0", log_level=sys.argv[1])
    with open_client(config) as client:
        print("sum", client.submit(sum, [1, 2]).result())
    print("level after", logging.getLogger("distributed").level)
"""


def run(tmp_path: Path, level: str) -> subprocess.CompletedProcess:
    (tmp_path / "script.py").write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, "script.py", level],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_dask_info_lines_are_hidden_by_default_and_shown_on_request(tmp_path):
    quiet = run(tmp_path, "warning")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "sum 3" in quiet.stdout and quiet.stdout.startswith("Dask: tcp://127.0.0.1:")
    assert "distributed" not in quiet.stderr
    assert "level after 20" in quiet.stdout  # Dask's own INFO level comes back afterwards
    verbose = run(tmp_path, "info")
    assert verbose.returncode == 0
    assert verbose.stderr.count("INFO:distributed.") >= 10
