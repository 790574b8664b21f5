"""Training step time of LightCLIP over its CLIP baseline, per encoder, batch 32 on CPU.

The shipped recipes (``recipes/train/<encoder>.yaml`` and ``<encoder>_clip.yaml``) with a
32k vocabulary, full-size text tower (width 512, 8 layers, 8 heads, 77 tokens), fp32; images at
IMAGE_SIZE px (default 224, the paper's size; LIGHTCLIP_BENCH_SIZE=128 for a quicker run).
LightCLIP runs with the paper's MLM setting (``loss.masking.batch_fraction`` 1.0) and at each of
FRACTIONS. LIGHTCLIP_BENCH_ENCODERS (comma-separated) picks the encoders and their order. Writes
bench/results/train_step.json after each encoder.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lightclip.models import IMAGE_ENCODERS  # noqa: E402
from lightclip.trainconfig import TrainConfig  # noqa: E402
from lightclip.training import DistInfo, build_parts, train_step  # noqa: E402
from pipeline.base.configs import from_dict, load_recipe  # noqa: E402

IMAGE_SIZE = int(os.environ.get("LIGHTCLIP_BENCH_SIZE", "224"))
BATCH, VOCAB, WARMUP, REPEATS = 32, 32000, 1, 3
FRACTIONS = (0.5, 0.25)


def setup(encoder: str, objective: str, *overrides: str):
    """Config, rank info and parts of ``objective`` (``clip`` or ``lightclip``) from its recipe."""
    name = f"recipes/train/{encoder}{'_clip' if objective == 'clip' else ''}.yaml"
    base = [
        f"model.image_size={IMAGE_SIZE}",
        f"model.text.vocab_size={VOCAB}",
        f"optim.batch_size={BATCH}",
        "run.precision=fp32",
        "run.device=cpu",
        "run.seed=0",
    ]
    cfg = from_dict(TrainConfig, load_recipe(name, [*base, *overrides]))
    info = DistInfo(threads=torch.get_num_threads())
    return cfg, info, build_parts(cfg, info)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    tokens = torch.randint(4, VOCAB, (BATCH, 77), generator=generator)
    lengths = torch.randint(8, 40, (BATCH,), generator=generator)  # caption lengths in tokens
    for row, n in enumerate(lengths.tolist()):
        tokens[row, 0], tokens[row, n], tokens[row, n + 1 :] = 2, 3, 0
    return images, tokens


def runs_of(encoder: str) -> dict[str, tuple]:
    runs = {"clip": setup(encoder, "clip"), "lightclip": setup(encoder, "lightclip")}
    for fraction in FRACTIONS:
        runs[f"lightclip_fraction_{fraction}"] = setup(encoder, "lightclip", f"loss.masking.batch_fraction={fraction}")
    return runs


def step_seconds(encoder: str) -> dict[str, dict[str, float]]:
    """Fastest step of each run in wall and in CPU time (this process, all threads), their
    steps interleaved: the machine is shared, so the minimum is the figure least disturbed by
    other load, and CPU time is steadier still."""
    runs = runs_of(encoder)
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in runs}
    micro = [batch()]
    for step in range(WARMUP + REPEATS):
        for name, (cfg, info, parts) in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            train_step(parts, cfg, info, micro, step, 100)
            if step >= WARMUP:
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.process_time() - cpu)
    return {clock: {name: min(t[clock]) for name, t in times.items()} for clock in ("wall", "cpu")}


def row(seconds: dict[str, float]) -> dict[str, float]:
    clip = seconds["clip"]
    out = {
        "clip_s": round(clip, 3),
        "lightclip_s": round(seconds["lightclip"], 3),
        "ratio": round(seconds["lightclip"] / clip, 3),
    }
    for fraction in FRACTIONS:
        value = seconds[f"lightclip_fraction_{fraction}"]
        out[f"lightclip_fraction_{fraction}_s"] = round(value, 3)
        out[f"ratio_fraction_{fraction}"] = round(value / clip, 3)
    return out


def write(rows: dict, load_before: float) -> None:
    """The results so far (written after every encoder: a long run keeps what it measured)."""
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), {torch.get_num_threads()} threads",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "batch": BATCH,
        "image_size": IMAGE_SIZE,
        "text": "width 512, 8 layers, 8 heads, 77 tokens",
        "recipes": "recipes/train/<encoder>.yaml, <encoder>_clip.yaml",
        "precision": "fp32",
        "statistic": f"min of {REPEATS} interleaved steps after {WARMUP} warm-up; wall and CPU seconds",
        "encoders": rows,
        "target": "ratio <= 1.3",
    }
    (ROOT / "bench" / "results" / "train_step.json").write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    load_before = os.getloadavg()[0]
    encoders = [
        name for name in os.environ.get("LIGHTCLIP_BENCH_ENCODERS", ",".join(IMAGE_ENCODERS)).split(",") if name
    ]
    rows = {}
    for encoder in encoders:
        seconds = step_seconds(encoder)
        rows[encoder] = {"wall": row(seconds["wall"]), "cpu": row(seconds["cpu"])}
        print(encoder, rows[encoder], flush=True)
        write(rows, load_before)


if __name__ == "__main__":
    main()
