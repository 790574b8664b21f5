"""One-GPU throughput: train steps, the token matching off the critical path, the loader.

    make bench-gpu                                  # python bench/bench_gpu.py
    python bench/bench_gpu.py --tiny --out /tmp/gpu.json

On a GPU (a few minutes): for CLIP and LightCLIP with each encoder (the shipped recipes, bf16,
224 px, full text tower) the largest power-of-two batch up to 1024 that fits, with its train-step
samples/s and peak memory; how long the token matching takes and how much of it the rest of the
step hides (LightCLIP at batch 512); loader samples/s from local shards with the photometric half
on the GPU against the per-sample CPU MoCo path, with the worker count used. Without a GPU the
same code runs at a tiny size on the CPU and ``needs_gpu`` lists the figures that want a GPU.
Writes bench/results/gpu.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_loader import make_shards  # noqa: E402
from timing import median_seconds  # noqa: E402

from lightclip.losses import batched_matching  # noqa: E402
from lightclip.models import IMAGE_ENCODERS  # noqa: E402
from lightclip.train import DistInfo, build_parts, train_step  # noqa: E402
from lightclip.trainconfig import TrainConfig  # noqa: E402
from pipeline.augment_image import MoCoConfig  # noqa: E402
from pipeline.configs import from_dict, load_recipe  # noqa: E402
from pipeline.stream import StreamConfig, build_loader, finish_images  # noqa: E402
from pipeline.tokenizer import CaptionTokenizer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gpu.json"
OBJECTIVES = ("clip", "lightclip")
NEEDS_GPU = [
    "train_steps: samples/s and peak memory, bf16, 224 px, batch up to 1024",
    "matching: the share of a batch-512 step spent waiting on the matching (target < 2%)",
    "loader: the photometric half on the GPU against the per-sample CPU path",
]


@dataclass
class Size:
    """How big each measurement is: ``full`` on a GPU, ``tiny`` anywhere (tests, CPU)."""

    name: str
    image: int
    max_batch: int
    match_batch: int
    warmup: int
    steps: int
    loader_batch: int
    loader_batches: int
    workers: int
    overrides: list[str] = field(default_factory=list)


FULL = Size("full", 224, 1024, 512, 3, 10, 64, 20, min(8, os.cpu_count() or 1), ["model.text.vocab_size=32000"])
TINY = Size("tiny", 64, 4, 4, 1, 2, 8, 4, 1, ["model.embed_dim=64", "model.text.vocab_size=300",
            "model.text.context_length=16", "model.text.width=64", "model.text.heads=4", "model.text.layers=4"])  # fmt: skip


def recipe(encoder: str, objective: str) -> str:
    return f"recipes/train/{encoder}{'_clip' if objective == 'clip' else ''}.yaml"


def train_config(encoder: str, objective: str, batch: int, size: Size, device: torch.device) -> TrainConfig:
    overrides = [f"model.image_size={size.image}", f"data.image.size={size.image}", f"optim.batch_size={batch}",
                 "run.precision=bf16", f"run.device={device.type}", "run.tensorboard=false", *size.overrides]  # fmt: skip
    return from_dict(TrainConfig, load_recipe(recipe(encoder, objective), overrides))


def synthetic_batch(cfg: TrainConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Images already on the device (as after the photometric half), captions of 8-40 tokens."""
    g = torch.Generator().manual_seed(0)
    rows, side, text = cfg.optim.batch_size, cfg.model.image_size, cfg.model.text
    images = torch.randn(rows, 3, side, side, generator=g).to(device)
    tokens = torch.randint(4, text.vocab_size, (rows, text.context_length), generator=g)
    for row, n in enumerate(torch.randint(8, min(40, text.context_length - 1), (rows,), generator=g).tolist()):
        tokens[row, 0], tokens[row, n], tokens[row, n + 1 :] = 2, 3, 0
    return images, tokens


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class MatchingProbe:
    """Collects the pending matchings a model's forward starts (``token_matching`` output)."""

    def __init__(self, model: torch.nn.Module):
        self.pending: list = []
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        if isinstance(output, dict) and "token_matching" in output:
            self.pending.append(output["token_matching"])

    def figures(self, step_s: float) -> dict | None:
        """Mean solve and wait per step, the hidden fraction and the wait's share of a step."""
        if not self.pending:
            return None
        solve = float(np.mean([p.solve_s for p in self.pending]))
        wait = float(np.mean([p.wait_s for p in self.pending]))
        return {"solve_ms": 1e3 * solve, "wait_ms": 1e3 * wait, "hidden_fraction": 1 - wait / max(solve, 1e-12),
                "wait_share_of_step": wait / step_s}  # fmt: skip


def time_steps(cfg: TrainConfig, device: torch.device, size: Size) -> dict:
    """Samples/s and peak memory of ``size.steps`` train steps after ``size.warmup``."""
    info = DistInfo(device=device, threads=torch.get_num_threads())
    parts = build_parts(cfg, info)
    micro = [synthetic_batch(cfg, device)]
    total = size.warmup + size.steps
    for step in range(size.warmup):
        train_step(parts, cfg, info, micro, step, total)
    probe = MatchingProbe(parts.model)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for step in range(size.warmup, total):
        train_step(parts, cfg, info, micro, step, total)
    synchronize(device)
    step_s = (time.perf_counter() - start) / size.steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    probe.handle.remove()
    return {"batch": cfg.optim.batch_size, "samples_per_s": cfg.optim.batch_size / step_s, "step_s": step_s,
            "peak_memory_gib": peak, "matching": probe.figures(step_s)}  # fmt: skip


def fits(encoder: str, objective: str, batch: int, size: Size, device: torch.device) -> dict | None:
    """``time_steps`` at ``batch``, or None when the device runs out of memory."""
    try:
        return time_steps(train_config(encoder, objective, batch, size, device), device, size)
    except torch.cuda.OutOfMemoryError:
        return None


def largest_batch_steps(encoder: str, objective: str, size: Size, device: torch.device) -> dict:
    """The largest power-of-two batch up to ``size.max_batch`` that fits, and its figures."""
    batch = size.max_batch
    while batch >= 1:
        result = fits(encoder, objective, batch, size, device)
        if result is not None:
            return result
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        batch //= 2
    raise RuntimeError(f"{encoder} {objective}: not even batch 1 fits on {device}")


def train_figures(size: Size, device: torch.device) -> dict:
    rows: dict[str, dict] = {}
    for encoder in IMAGE_ENCODERS:
        rows[encoder] = {objective: largest_batch_steps(encoder, objective, size, device) for objective in OBJECTIVES}
        row = rows[encoder]
        row["lightclip_over_clip_step_time"] = (row["clip"]["samples_per_s"] / row["lightclip"]["samples_per_s"]
                                               if row["clip"]["batch"] == row["lightclip"]["batch"] else None)  # fmt: skip
        print(encoder, json.dumps(row, default=str), flush=True)
    return rows


def matching_figures(size: Size, device: torch.device) -> dict:
    """The solve alone (4096 and ``match_batch`` pairs of 49 x 32) and inside LightCLIP steps."""
    rng = np.random.default_rng(0)
    alone = {}
    for pairs in sorted({size.match_batch, 4096}):
        cost = rng.uniform(0, 2, size=(pairs, 49, 32)).astype(np.float32)
        valid = np.ones((pairs, 32), dtype=bool)
        alone[f"{pairs}_pairs_ms"] = 1e3 * median_seconds(lambda c=cost, v=valid: batched_matching(c, v), 1, 5)
    encoder = "swin_nano"
    steps = time_steps(train_config(encoder, "lightclip", size.match_batch, size, device), device, size)
    return {"alone": alone, "in_step": {"encoder": encoder, "batch": size.match_batch, "step_s": steps["step_s"],
                                        **(steps["matching"] or {})}}  # fmt: skip


def loader_rate(folder: Path, tokenizer: CaptionTokenizer, size: Size, device: torch.device, split: bool) -> float:
    """Samples/s of up to ``size.loader_batches`` batches through ``finish_images`` on
    ``device``, the first batch (worker start-up) not counted."""
    cfg = StreamConfig(shards=str(folder), workers=size.workers, shuffle_buffer=500, shuffle_initial=100,
                       image=MoCoConfig(size=size.image, split=split))  # fmt: skip
    loader = build_loader(cfg, tokenizer, size.loader_batch)
    samples, start = 0, 0.0
    for index, batch in zip(range(size.loader_batches + 1), loader.epoch(0)):
        images = finish_images(batch, cfg.image, device)
        synchronize(device)
        if index == 0:
            start = time.perf_counter()
        else:
            samples += images.shape[0]
    return samples / (time.perf_counter() - start)


def loader_figures(size: Size, device: torch.device) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_shards(folder)
        tokenizer = CaptionTokenizer.from_file(folder, 77)
        split = loader_rate(folder, tokenizer, size, device, split=True)
        per_sample = loader_rate(folder, tokenizer, size, device, split=False)
    return {"workers": size.workers, "batch": size.loader_batch, "batches": size.loader_batches, "image": size.image,
            "split_device_photometric_samples_per_s": split, "per_sample_cpu_samples_per_s": per_sample,
            "ratio": split / per_sample}  # fmt: skip


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def run(size: Size, device: torch.device) -> dict:
    start = time.perf_counter()
    result = {"device": device_name(device), "size": asdict(size), "torch": torch.__version__,
              "train_steps": train_figures(size, device)}  # fmt: skip
    result["matching"] = matching_figures(size, device)
    print("matching", json.dumps(result["matching"], default=str), flush=True)
    result["loader"] = loader_figures(size, device)
    print("loader", json.dumps(result["loader"], default=str), flush=True)
    result["needs_gpu"] = [] if device.type == "cuda" and size.name == "full" else NEEDS_GPU
    result["targets"] = {"matching.in_step.wait_share_of_step": "< 0.02 at batch 512", "minutes": "< 8"}
    result["seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes even on a GPU (the CPU always uses them)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON path (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size = TINY if args.tiny or device.type != "cuda" else FULL
    result = run(size, device)
    for line in result["needs_gpu"]:
        print(f"needs a GPU (measured here at the tiny size only): {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
