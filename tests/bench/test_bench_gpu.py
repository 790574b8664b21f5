"""`make bench-gpu` at the tiny size: every figure is measured and written, GPU-only ones named."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_gpu  # noqa: E402
import flops  # noqa: E402
import openclip_step  # noqa: E402

from lightclip.models import IMAGE_ENCODERS  # noqa: E402

CPU = torch.device("cpu")


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


def test_flops_count_matmuls_forward_and_backward_and_the_cpu_attention():
    layer = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64, requires_grad=True)
    # forward 2*8*64*32; backward the same twice (input and weight gradients)
    assert flops.count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 8 * 64 * 32
    q = torch.randn(2, 4, 10, 16, requires_grad=True)
    mask = torch.ones(2, 1, 10, 10, dtype=torch.bool)
    attention = flops.count_flops(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask).sum().backward()
    )
    # torch's own formulas, seven products of 2*B*H*L*L*D: QK^T and PV forward; backward recomputes
    # QK^T and takes dV, dP, dQ, dK (torch's counter alone counts none of the CPU kernel's)
    assert attention == 7 * (2 * 2 * 4 * 10 * 10 * 16)


@pytest.mark.parametrize("groups", [1, 8])
def test_a_convolution_backward_costs_two_forwards_grouped_or_not(groups):
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=groups, bias=False)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    forward = 2 * 2 * 16 * 16 * 8 * (8 // groups) * 9
    assert flops.count_flops(lambda: conv(x)) == forward
    assert flops.count_flops(lambda: conv(x).sum().backward()) == 3 * forward  # torch's own: 10x for groups=8
    x.requires_grad_(False)
    assert flops.count_flops(lambda: conv(x).sum().backward()) == 2 * forward  # no input gradient asked for


def test_mfu_against_the_listed_peak_and_none_without_one():
    assert flops.peak_tflops("NVIDIA H200") == 989.0 and flops.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert flops.peak_tflops("x86_64 CPU, 2 cores") is None and flops.peak_tflops("Some GPU") is None
    assert flops.efficiency(10e9, 5000, 989.0) == pytest.approx({"tflops": 50.0, "mfu": 50.0 / 989.0})
    assert flops.efficiency(10e9, 5000, None) == {"tflops": 50.0, "mfu": None}


def test_sections_past_the_budget_are_skipped_and_named(monkeypatch, capsys):
    monkeypatch.setattr(bench_gpu, "train_figures", lambda size, device, budget: {})
    result = bench_gpu.run(bench_gpu.TINY, CPU, budget_seconds=0)
    names = ["open_clip", "from_shards", "small_regime", "speed_options", "matching", "loader", "compile"]
    assert result["skipped"] == names and not set(names) & set(result)
    assert capsys.readouterr().out.count("past --budget-seconds 0") == len(names)


def test_a_failing_section_is_recorded_and_the_rest_still_run_and_are_saved(monkeypatch):
    monkeypatch.setattr(bench_gpu, "train_figures", lambda size, device, budget: {})
    monkeypatch.setattr(bench_gpu, "sections", lambda *args: {"broken": lambda: 1 / 0, "fine": lambda: {"x": 1}})
    saved: list[set] = []
    result = bench_gpu.run(bench_gpu.TINY, CPU, 60, lambda partial: saved.append(set(partial)))
    assert result["broken"] == {"error": "ZeroDivisionError: division by zero"} and result["fine"] == {"x": 1}
    assert len(saved) == 3 and "broken" in saved[1] and "fine" in saved[2]  # written after every section


def test_matching_figures_cover_the_timed_steps_only():
    probe = bench_gpu.MatchingProbe(torch.nn.Identity())
    solved = [(0.6, 0.5), (0.004, 0.0), (0.006, 0.001), (0.9, 0.9)]  # warm-up (solver compiling), 2 timed, sync check
    probe.pending = [SimpleNamespace(solve_s=solve, wait_s=wait) for solve, wait in solved]
    figures = probe.figures(0.1, first=1, count=2)
    assert figures["solve_ms"] == pytest.approx(5.0) and figures["wait_ms"] == pytest.approx(0.5)
    assert figures["hidden_fraction"] == pytest.approx(0.9) and figures["wait_share_of_step"] == pytest.approx(0.005)
    assert probe.figures(0.1, first=4) is None


def test_open_clip_missing_is_recorded_not_fatal(monkeypatch):
    monkeypatch.setattr(bench_gpu, "openclip_version", lambda: None)
    rows = bench_gpu.openclip_figures({"resnet18": {}}, bench_gpu.TINY, CPU, bench_gpu.Budget(60))
    assert rows == {"error": openclip_step.NOT_INSTALLED} and "not installed" in rows["error"]


@pytest.mark.parametrize("encoder", sorted(IMAGE_ENCODERS))
def test_open_clip_gets_the_same_image_tower_and_text_shape(encoder):
    pytest.importorskip("open_clip")
    cfg = bench_gpu.train_config(encoder, "clip", 2, bench_gpu.TINY, CPU)
    model = openclip_step.build_openclip(cfg)
    towers = bench_gpu.build_parts(cfg, bench_gpu.DistInfo()).model.clip
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(model.visual.trunk) == count(towers.visual)  # the toolkit's stages hold the same layers
    assert len(model.transformer.resblocks) == cfg.model.text.layers and model.transformer.width == cfg.model.text.width
    images, tokens = bench_gpu.synthetic_batch(cfg, CPU)
    out = model(images, tokens)
    assert out["image_features"].shape == out["text_features"].shape == (2, cfg.model.embed_dim)


@pytest.mark.slow
def test_make_bench_gpu_runs_tiny_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run(
        ["make", "-s", "bench-gpu", f"BENCH_GPU_ARGS=--tiny --out {out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
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
        for objective in ("clip", "lightclip"):
            assert row[objective]["flops_per_sample"] > 1e6 and row[objective]["tflops"] > 0
        # the MLM passes and token heads add work to the same towers
        assert row["lightclip"]["flops_per_sample"] > row["clip"]["flops_per_sample"]
    assert result["skipped"] == []
    clip = result["open_clip"]
    if "error" not in clip:
        for encoder in ("resnet18", "mobilenet_v2", "swin_nano"):
            assert clip[encoder]["batch"] == 4 and clip[encoder]["clip_over_open_clip"] > 0
            assert clip[encoder]["flops_per_sample"] > 1e6
    shards = result["from_shards"]
    assert shards["steps_counted"] >= 1 and shards["samples_per_s"] > 0 and shards["ratio"] > 0
    assert 0 <= shards["data_wait_fraction"] <= 1 and shards["workers"] == os.cpu_count()
    small = result["small_regime"]
    assert small["image"] == 64 and small["clip"]["batch"] == small["lightclip"]["batch"] == 8
    assert small["lightclip_over_clip_step_time"] > 0
    assert "GPU only" in result["compile"]["skipped"]  # wired in; compiling needs a GPU's time
    speed = result["speed_options"]
    assert set(speed["resnet18"]) == {"channels_last", "fused_adamw"} and set(speed["swin_nano"]) == {"fused_adamw"}
    assert all(option["on"] > 0 and option["off"] > 0 for row in speed.values() for option in row.values())
    alone = result["matching"]["alone"]
    assert alone["4096_pairs_ms"] > alone["4_pairs_ms"] > 0
    assert result["matching"]["in_step"]["batch"] == 4 and result["matching"]["in_step"]["solve_ms"] > 0
    loader = result["loader"]
    assert loader["workers"] == 1 and loader["split_device_photometric_samples_per_s"] > 0
    assert loader["per_sample_cpu_samples_per_s"] > 0
    if not torch.cuda.is_available():
        assert result["needs_gpu"] == bench_gpu.NEEDS_GPU
        row = result["train_steps"]["resnet18"]["clip"]
        assert row["peak_memory_gib"] is None and row["mfu"] is None and row["syncs"] is None
        assert result["peak_bf16_tflops"] is None
        assert done.stdout.count("needs a GPU") == len(bench_gpu.NEEDS_GPU)
