"""`make bench-gpu` at the tiny size: every figure is measured and written, GPU-only ones named."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_gpu  # noqa: E402


def test_batch_search_halves_until_a_batch_fits(monkeypatch):
    tried = []

    def fits(encoder, objective, batch, size, device):
        tried.append(batch)
        return {"batch": batch} if batch <= 128 else None

    monkeypatch.setattr(bench_gpu, "fits", fits)
    assert bench_gpu.largest_batch_steps("resnet18", "clip", bench_gpu.FULL, torch.device("cpu")) == {"batch": 128}
    assert tried == [1024, 512, 256, 128]
    monkeypatch.setattr(bench_gpu, "fits", lambda *args: None)
    with pytest.raises(RuntimeError, match="not even batch 1"):
        bench_gpu.largest_batch_steps("resnet18", "clip", bench_gpu.FULL, torch.device("cpu"))


@pytest.mark.slow
def test_make_bench_gpu_runs_tiny_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run(["make", "-s", "bench-gpu", f"BENCH_GPU_ARGS=--tiny --out {out}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["size"]["name"] == "tiny"
    for encoder in ("resnet18", "mobilenet_v2", "swin_nano"):
        row = result["train_steps"][encoder]
        for objective in ("clip", "lightclip"):
            assert row[objective]["batch"] == 4 and row[objective]["samples_per_s"] > 0
        assert row["clip"]["matching"] is None  # no token objective
        matching = row["lightclip"]["matching"]
        assert matching["solve_ms"] > 0 and matching["wait_ms"] >= 0 and matching["hidden_fraction"] <= 1
        assert row["lightclip_over_clip_step_time"] > 0
    alone = result["matching"]["alone"]
    assert alone["4096_pairs_ms"] > alone["4_pairs_ms"] > 0
    assert result["matching"]["in_step"]["batch"] == 4 and result["matching"]["in_step"]["solve_ms"] > 0
    loader = result["loader"]
    assert loader["workers"] == 1 and loader["split_device_photometric_samples_per_s"] > 0
    assert loader["per_sample_cpu_samples_per_s"] > 0
    if not torch.cuda.is_available():
        assert result["needs_gpu"] == bench_gpu.NEEDS_GPU
        assert result["train_steps"]["resnet18"]["clip"]["peak_memory_gib"] is None
        assert done.stdout.count("needs a GPU") == len(bench_gpu.NEEDS_GPU)
