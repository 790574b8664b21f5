"""DDP on CPU (gloo, 2 processes through torchrun) against one process on the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY
from synthetic import write_shards

from lightclip.checkpoint import latest_checkpoint, load_checkpoint, run_metrics

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def torchrun(nproc: int, *args: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, [12, 12, 12, 12])
    return folder


@pytest.mark.slow
def test_two_ranks_match_one_process(shards, tmp_path):
    single, double = tmp_path / "one" / "p.pt", tmp_path / "two" / "p.pt"
    for out in (single, double):
        out.parent.mkdir()
    done = subprocess.run(
        [sys.executable, str(HERE / "ddp_parity.py"), str(shards), str(single)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    torchrun(2, str(HERE / "ddp_parity.py"), str(shards), str(double))
    a, b = torch.load(single, weights_only=True), torch.load(double, weights_only=True)
    flat_a, flat_b = torch.cat([a[n].flatten() for n in a]), torch.cat([b[n].flatten() for n in a])
    assert (flat_a - flat_b).norm() / flat_a.norm() <= 1e-5
    # Per tensor a little looser: Adam turns the float noise of tiny gradients in small,
    # zero-initialised biases into visible relative steps.
    for name in a:
        diff = (a[name] - b[name]).norm() / a[name].norm().clamp_min(1e-12)
        assert diff <= 1e-4, f"{name}: relative difference {diff:.2e}"


@pytest.mark.slow
def test_torchrun_training_run_checkpoints_every_rank_position(shards, tmp_path):
    out = tmp_path / "run"
    torchrun(
        2,
        "-m",
        "lightclip",
        "train",
        "--recipe",
        str(TINY),
        f"data.shards={shards}",
        f"run.out_dir={out}",
        "data.workers=1",
        "optim.batch_size=8",
        "optim.max_steps=3",
        "run.progress=false",
        "model.image_encoder=mobilenet_v2",
    )
    state = load_checkpoint(latest_checkpoint(out))
    assert state["step"] == 3 and state["data"]["world_size"] == 2
    assert [p["batches"] for p in state["data"]["positions"]] == [3, 3]
    rows = [json.loads(line) for line in run_metrics(out).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["loss"] > 0 for r in rows)
