"""Kill a training run after a checkpoint, resume it, and get exactly the uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY, tiny_config
from synthetic import write_shards

from lightclip.checkpoint import latest_checkpoint, load_checkpoint, run_metrics
from lightclip.training import train

# 4 shards x 10 samples, batch 8: 5 batches per epoch, so checkpoints fall mid-epoch.
OVERRIDES = [
    "optim.batch_size=8",
    "optim.max_steps=10",
    "run.save_every=3",
    "run.keep=10",
    "model.image_encoder=mobilenet_v2",
    "data.workers=2",
]


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in run_metrics(run_dir).read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows}


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path):
    shards = tmp_path / "shards"
    write_shards(shards, [10, 10, 10, 10])
    killed = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "lightclip",
        "train",
        "--recipe",
        str(TINY),
        f"data.shards={shards}",
        f"run.out_dir={killed}",
        "run.progress=false",
        *OVERRIDES,
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    deadline = time.time() + 300
    while latest_checkpoint(killed) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    saved = load_checkpoint(latest_checkpoint(killed))["step"]
    assert 3 <= saved < 10

    resumed = train(tiny_config(shards, killed, *OVERRIDES))
    reference = train(tiny_config(shards, tmp_path / "reference", *OVERRIDES))
    assert resumed.step == reference.step == 10

    got, want = losses(killed), losses(tmp_path / "reference")
    assert sorted(got) == list(range(1, 11))
    assert [got[s] for s in range(saved + 1, 11)] == [want[s] for s in range(saved + 1, 11)]
    a = load_checkpoint(resumed.checkpoint)["model"]
    b = load_checkpoint(reference.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
