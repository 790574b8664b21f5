"""Stopping a run: Ctrl-C / SIGTERM save a checkpoint and print one line, the same command
resumes exactly, and metrics.jsonl never holds a step twice."""

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

from lightclip.checkpoint import (
    METRICS_FILE,
    checkpoint_dir,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from lightclip.training import DistInfo, train
from lightclip.training.session import startup_summary
from lightclip.training.signals import StopSignals

# 4 shards x 10 samples, batch 8: 5 batches per epoch; no periodic checkpoint before the end.
OVERRIDES = [
    "optim.batch_size=8",
    "optim.max_steps=8",
    "run.save_every=1000",
    "run.keep=10",
    "model.image_encoder=mobilenet_v2",
    "data.workers=2",
]


def logged_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if line.strip()]


def losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return {row["step"]: row["loss"] for row in map(json.loads, lines)}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, [10, 10, 10, 10])
    return folder


def test_stop_signals_count_a_quick_repeat_once_and_a_later_one_as_stop_now():
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        assert not stop.requested(DistInfo())
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # forwarded copy of the same Ctrl-C
        time.sleep(0.05)
        assert stop.signum == signal.SIGINT and stop.requested(DistInfo())
        stop.first -= StopSignals.REPEAT_S + 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_restart_without_checkpoint_rewrites_the_log_instead_of_repeating_steps(shards, tmp_path):
    run = tmp_path / "run"
    first = train(tiny_config(shards, run, *OVERRIDES, "optim.max_steps=3"))
    assert logged_steps(run) == [1, 2, 3]
    for path in list_checkpoints(run):  # as if killed before its first checkpoint
        path.unlink()
    second = train(tiny_config(shards, run, *OVERRIDES, "optim.max_steps=3"))
    assert first.step == second.step == 3
    assert logged_steps(run) == [1, 2, 3]


def test_startup_summary_names_device_parameters_batch_steps_data_and_output(shards, tmp_path, caplog):
    caplog.set_level("INFO", logger="lightclip.training")
    train(tiny_config(shards, tmp_path / "run", *OVERRIDES, "optim.max_steps=1"))
    text = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("training"))
    assert "model: mobilenet_v2, " in text and "M parameters (" in text
    assert "device: cpu x 1 rank(s), precision fp32" in text
    assert "global batch: 8 = 1 rank(s) x 1 accumulation step(s) x 8" in text
    assert "steps: 1 (5 per epoch, 0.2 epochs)" in text
    assert f"data: 40 samples per epoch from 4 shard(s) ({shards})" in text
    assert f"output: {tmp_path / 'run'} (checkpoint every 1000 steps, starting at step 0)" in text
    assert callable(startup_summary)


def run_command(shards: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lightclip",
        "train",
        "--recipe",
        str(TINY),
        f"data.shards={shards}",
        f"run.out_dir={out}",
        "run.progress=false",
        *OVERRIDES,
    ]


def interrupt(cmd: list[str], out: Path, signum: int, after_step: int) -> subprocess.CompletedProcess:
    """Start ``cmd`` in its own process group and, once ``after_step`` is logged, send SIGINT
    to the group (Ctrl-C in a terminal reaches the loader workers too) or SIGTERM to the main
    process (``kill PID``, a container stop)."""
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    deadline = time.time() + 300
    metrics = out / METRICS_FILE
    while proc.poll() is None and time.time() < deadline:
        if metrics.is_file() and after_step in logged_steps(out):
            os.killpg(proc.pid, signum) if signum == signal.SIGINT else proc.send_signal(signum)
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_checkpoint_prints_one_line_and_the_same_command_resumes_exactly(shards, tmp_path, signum):
    out = tmp_path / "stopped"
    cmd = run_command(shards, out)
    done = interrupt(cmd, out, signum, after_step=2)
    assert done.returncode == 128 + signum, done.stderr[-2000:]
    step = load_checkpoint(latest_checkpoint(out))["step"]
    assert 2 <= step < 8
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"lightclip train: stopped at step {step}; rerun the same command to resume"
    assert "Traceback" not in done.stderr
    assert logged_steps(out) == list(range(1, step + 1))

    again = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming at step {step} from" in again.stderr
    reference = train(tiny_config(shards, tmp_path / "reference", *OVERRIDES))
    got, want = losses(out), losses(tmp_path / "reference")
    assert sorted(got) == list(range(1, 9))
    assert got == want
    a = load_checkpoint(latest_checkpoint(out))["model"]
    b = load_checkpoint(reference.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert checkpoint_dir(out).is_dir()
