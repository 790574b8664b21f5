"""A real cluster on loopback: ``dask scheduler`` and two ``dask worker`` processes; one
worker's process group is killed (SIGKILL) mid-download, and the build through
``cluster.address`` still writes shards byte-identical to a local build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_world import make_world, recipe

from pipeline.base import shards
from pipeline.base.configs import from_dict, load_recipe
from pipeline.build import BuildConfig, build

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "recipes" / "data" / "demo.yaml")
DASK = str(Path(sys.executable).with_name("dask"))
SMALL = ["augment.variants=0", "augment.methods=[swap]", "download.thread_count=2", "keep_work=true"]


def _spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [DASK, *args, "--no-dashboard"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _wait_for(condition, what: str, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in shards.shard_paths(directory)}


@pytest.mark.timeout(180)
def test_build_survives_a_killed_worker_with_identical_shards(tmp_path):
    world = make_world(tmp_path / "world", good=24, delay_s=0.15)
    address_file = tmp_path / "scheduler.json"
    processes = [_spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(address_file))]
    try:
        _wait_for(address_file.is_file, "the scheduler")
        for name in ("w0", "w1"):
            processes.append(
                _spawn(
                    "worker",
                    "--scheduler-file",
                    str(address_file),
                    "--host",
                    "127.0.0.1",
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--name",
                    name,
                )
            )
        address = json.loads(address_file.read_text())["address"]
        local = tmp_path / "local"
        build(
            from_dict(BuildConfig, load_recipe(DEMO, recipe(world, local, n_workers=1, processes="false") + SMALL)),
            log=lambda _: None,
        )
        out = tmp_path / "cluster"
        overrides = recipe(world, out) + SMALL + [f"cluster.address={address}"]
        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "build", "--recipe", DEMO, *overrides],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(run)
        _wait_for(
            lambda: (
                any((out / "_work" / "units").glob("*/samples.parquet"))
                or any((out / "_work" / "units").glob("*/images.bin"))
            ),
            "the first download",
        )
        os.killpg(processes[2].pid, signal.SIGKILL)  # worker w1 and its nanny, mid-download
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
        assert json.loads(stdout[stdout.index("{") :])["samples"] == len(world.good_keys)
        assert _shard_bytes(out) == _shard_bytes(local) and _shard_bytes(local)
        assert (out / "stats.json").read_bytes() == (local / "stats.json").read_bytes()
    finally:
        for process in reversed(processes):
            _stop(process)
        world.server.stop()
