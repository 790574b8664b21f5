"""One-GPU throughput: train steps against open_clip and the hardware, training from shards,
the small regime, the speed switches, the token matching, the loader.

    make bench-gpu                                  # python bench/bench_gpu.py
    python bench/bench_gpu.py --tiny --out /tmp/gpu.json --budget-seconds 360

On a GPU (a few minutes, one run): for CLIP and LightCLIP with each encoder (the shipped recipes,
bf16, 224 px, full text tower) the largest power-of-two batch up to 1024 that fits, with its
train-step samples/s, peak memory, model FLOPs per sample, TFLOP/s, MFU and host-device syncs per
step; open_clip's step with the same towers and batch beside CLIP's (ratios); resnet18 CLIP
trained end to end from JPEG shards by ``lightclip.training`` with every core loading, against its
synthetic-tensor step; the demo recipe's towers at 64 px, batch 128; each speed switch
(``run.channels_last``, ``optim.fused``) on and off; the token matching (LightCLIP at batch
512); the loader with the photometric half on the GPU against the per-sample CPU path;
resnet18 CLIP with ``run.compile`` (its first step, the compile, and samples/s). Sections
that would start past ``--budget-seconds`` are skipped and named. Without a GPU the same code runs
at a tiny size on the CPU and ``needs_gpu`` lists the figures that want a GPU. Writes
bench/results/gpu.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_loader import make_shards  # noqa: E402
from caption_shards import ShardPlan, write_caption_shards  # noqa: E402
from flops import count_flops, efficiency, peak_tflops  # noqa: E402
from openclip_step import NOT_INSTALLED, openclip_step, openclip_version  # noqa: E402
from timing import median_seconds  # noqa: E402

from lightclip.checkpoint import run_metrics  # noqa: E402
from lightclip.losses import batched_matching  # noqa: E402
from lightclip.models import IMAGE_ENCODERS  # noqa: E402
from lightclip.trainconfig import TrainConfig  # noqa: E402
from lightclip.training import DistInfo, Parts, build_parts, train, train_step  # noqa: E402
from pipeline.base.augment_image import MoCoConfig  # noqa: E402
from pipeline.base.configs import from_dict, load_recipe  # noqa: E402
from pipeline.base.tokenizer import CaptionTokenizer  # noqa: E402
from pipeline.stream import StreamConfig, build_loader, finish_images  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gpu.json"
OBJECTIVES = ("clip", "lightclip")
NEEDS_GPU = [
    "train_steps: samples/s, peak memory, TFLOP/s, MFU and syncs per step, bf16, 224 px, batch up to 1024",
    "open_clip: its step with the same towers and batch against the toolkit's CLIP and LightCLIP",
    "from_shards: resnet18 CLIP trained from JPEG shards with every core loading, against the synthetic step",
    "small_regime: the demo towers at 64 px, batch 128, LightCLIP / CLIP step",
    "speed_options: channels-last and fused AdamW, each on and off",
    "matching: the share of a batch-512 step spent waiting on the matching (target < 2%)",
    "loader: the photometric half on the GPU against the per-sample CPU path",
    "compile: resnet18 CLIP with run.compile, its first step (the compile) and samples/s against eager",
]
SPEED_OPTIONS = {"channels_last": "run.channels_last", "fused_adamw": "optim.fused"}
PRINTS_ITS_ROWS = {"open_clip", "speed_options"}  # sections that print a line per row themselves
SMALL_RECIPES = {"clip": "recipes/train/demo_clip.yaml", "lightclip": "recipes/train/demo.yaml"}


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
    shard_steps: int = 4  # end-to-end steps from shards; the first ``shard_skip`` are start-up
    shard_skip: int = 2
    shard_plan: ShardPlan = field(default_factory=lambda: ShardPlan(2, 16, 80, 16, 300))
    small_batch: int = 8  # the small regime (demo towers)
    small_image: int = 64
    small_steps: int = 2


CORES = os.cpu_count() or 1
FULL = Size(
    "full",
    224,
    1024,
    512,
    3,
    10,
    64,
    20,
    min(8, CORES),
    ["model.text.vocab_size=32000"],
    shard_steps=120,
    shard_skip=3 * CORES + 3,
    shard_plan=ShardPlan(4 * CORES, 64, 256, 77, 32000),
    small_batch=128,
    small_steps=30,
)
TINY = Size(
    "tiny",
    64,
    4,
    4,
    1,
    2,
    8,
    4,
    1,
    [
        "model.embed_dim=64",
        "model.text.vocab_size=300",
        "model.text.context_length=16",
        "model.text.width=64",
        "model.text.heads=4",
        "model.text.layers=4",
    ],
)


class Budget:
    """Wall seconds the whole run may take: a section that would start past them is skipped."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, section: str) -> bool:
        if self.elapsed() < self.seconds:
            return True
        print(f"[{self.elapsed():5.0f} s] {section}: skipped, past --budget-seconds {self.seconds:.0f}", flush=True)
        return False

    def progress(self, label: str, row: object) -> None:
        print(f"[{self.elapsed():5.0f} s] {label} {json.dumps(row, default=str)}", flush=True)


def recipe(encoder: str, objective: str) -> str:
    return f"recipes/train/{encoder}{'_clip' if objective == 'clip' else ''}.yaml"


def train_config(
    encoder: str,
    objective: str,
    batch: int,
    size: Size,
    device: torch.device,
    path: str = "",
    extra: tuple[str, ...] = (),
) -> TrainConfig:
    """The shipped recipe (or ``path``) at ``size``'s image size and ``batch``, bf16, on ``device``."""
    overrides = [
        f"model.image_size={size.image}",
        f"data.image.size={size.image}",
        f"optim.batch_size={batch}",
        "run.precision=bf16",
        f"run.device={device.type}",
        "run.tensorboard=false",
        *size.overrides,
        *extra,
    ]
    return from_dict(TrainConfig, load_recipe(path or recipe(encoder, objective), overrides))


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

    def figures(self, step_s: float, first: int = 0, count: int | None = None) -> dict | None:
        """Mean solve and wait per step over the ``count`` steps from ``first`` (the timed ones:
        a warm-up step may compile the solver), the hidden fraction and the wait's share of a step."""
        pending = self.pending[first : None if count is None else first + count]
        if not pending:
            return None
        solve = float(np.mean([p.solve_s for p in pending]))
        wait = float(np.mean([p.wait_s for p in pending]))
        return {
            "solve_ms": 1e3 * solve,
            "wait_ms": 1e3 * wait,
            "hidden_fraction": 1 - wait / max(solve, 1e-12),
            "wait_share_of_step": wait / step_s,
        }


def host_syncs(step: Callable[[], object], device: torch.device) -> dict | None:
    """Host-device synchronisations in one call of ``step`` and the lines that asked for them
    (``torch.cuda.set_sync_debug_mode``); None on a CPU, where nothing waits for a device."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    where = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
    return {"per_step": len(syncs), "where": dict(where.most_common(8))}


def run_steps(step: Callable[[int], object], first: int, stop: int, device: torch.device) -> float:
    """Seconds for ``step(first)`` ... ``step(stop - 1)``, the device's queue drained at the end."""
    start = time.perf_counter()
    for index in range(first, stop):
        step(index)
    synchronize(device)
    return time.perf_counter() - start


def measure(step: Callable[[int], object], batch: int, size: Size, device: torch.device, steps: int = 0) -> dict:
    """Samples/s, peak memory, model FLOPs (counted in the first warm-up step), TFLOP/s, MFU and
    syncs of ``step(index)``: ``size.warmup`` untimed calls, then ``steps`` (``size.steps``) timed."""
    steps = steps or size.steps
    flops = count_flops(lambda: step(0))
    run_steps(step, 1, size.warmup, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s = run_steps(step, size.warmup, size.warmup + steps, device) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    row = {
        "batch": batch,
        "samples_per_s": batch / step_s,
        "step_s": step_s,
        "peak_memory_gib": peak,
        "flops_per_sample": flops / batch,
    }
    row.update(efficiency(flops / batch, row["samples_per_s"], peak_tflops(device_name(device))))
    row["syncs"] = host_syncs(lambda: step(size.warmup + steps), device)
    return row


def toolkit_step(cfg: TrainConfig, device: torch.device, total: int) -> tuple[Callable[[int], object], Parts]:
    """The trainer's ``train_step(index)`` on one synthetic batch (``total``: the schedule's
    length, past every step measured), and the parts it trains."""
    info = DistInfo(device=device, threads=torch.get_num_threads())
    parts = build_parts(cfg, info)
    micro = [synthetic_batch(cfg, device)]
    return (lambda index: train_step(parts, cfg, info, micro, index, total)), parts


def time_steps(cfg: TrainConfig, device: torch.device, size: Size, steps: int = 0) -> dict:
    """:func:`measure` of the trainer's step, with the token matching's figures (LightCLIP)."""
    steps = steps or size.steps
    step, parts = toolkit_step(cfg, device, size.warmup + steps + 2)
    probe = MatchingProbe(parts.model)
    row = measure(step, cfg.optim.batch_size, size, device, steps)
    probe.handle.remove()
    row["matching"] = probe.figures(row["step_s"], size.warmup, steps)
    return row


def fits(encoder: str, objective: str, batch: int, size: Size, device: torch.device) -> dict | None:
    """``time_steps`` at ``batch``, or None when the device runs out of memory."""
    try:
        return time_steps(train_config(encoder, objective, batch, size, device), device, size)
    except torch.cuda.OutOfMemoryError:
        return None


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def largest_batch_steps(encoder: str, objective: str, size: Size, device: torch.device) -> dict:
    """The largest power-of-two batch up to ``size.max_batch`` that fits, and its figures."""
    batch = size.max_batch
    while batch >= 1:
        result = fits(encoder, objective, batch, size, device)
        if result is not None:
            return result
        free_memory(device)
        batch //= 2
    raise RuntimeError(f"{encoder} {objective}: not even batch 1 fits on {device}")


def train_figures(size: Size, device: torch.device, budget: Budget) -> dict:
    rows: dict[str, dict] = {}
    for encoder in IMAGE_ENCODERS:
        rows[encoder] = {objective: largest_batch_steps(encoder, objective, size, device) for objective in OBJECTIVES}
        row = rows[encoder]
        row["lightclip_over_clip_step_time"] = (
            row["clip"]["samples_per_s"] / row["lightclip"]["samples_per_s"]
            if row["clip"]["batch"] == row["lightclip"]["batch"]
            else None
        )
        budget.progress(encoder, row)
    return rows


def openclip_row(encoder: str, batch: int, size: Size, device: torch.device) -> dict:
    """open_clip's step with ``encoder``'s towers at ``batch`` (the out-of-memory case named)."""
    cfg = train_config(encoder, "clip", batch, size, device)
    images, tokens = synthetic_batch(cfg, device)
    try:
        return measure(openclip_step(cfg, images, tokens.to(device)), batch, size, device)
    except torch.cuda.OutOfMemoryError:
        return {"batch": batch, "error": "out of device memory"}
    finally:
        free_memory(device)


def openclip_figures(train_rows: dict, size: Size, device: torch.device, budget: Budget) -> dict:
    """Per encoder: open_clip's row at the toolkit CLIP row's batch, and the toolkit / open_clip ratios."""
    installed = openclip_version()
    if installed is None:
        return {"error": NOT_INSTALLED}
    rows: dict[str, dict] = {"version": installed}
    for encoder, toolkit in train_rows.items():
        if not budget.allows(f"open_clip {encoder}"):
            break
        row = openclip_row(encoder, toolkit["clip"]["batch"], size, device)
        reference = row.get("samples_per_s")
        for objective in OBJECTIVES:
            same = reference and toolkit[objective]["batch"] == row["batch"]
            row[f"{objective}_over_open_clip"] = toolkit[objective]["samples_per_s"] / reference if same else None
        rows[encoder] = row
        budget.progress(f"open_clip {encoder}", row)
    return rows


def shards_run_config(folder: Path, batch: int, size: Size, device: torch.device) -> TrainConfig:
    """resnet18 CLIP for ``lightclip.training``: every core loading, resampled shards, a log row per step."""
    steps = size.warmup + size.shard_steps
    overrides = (
        f"data.shards={folder}",
        f"data.workers={CORES}",
        "data.resampled=true",
        f"data.samples_per_epoch={batch * (steps + 1)}",
        f"optim.max_steps={steps}",
        f"run.out_dir={folder / 'run'}",
        "run.log_every=1",
        f"run.save_every={steps + 1}",
        "run.save_optimizer=false",
        "run.progress=false",
        "run.resume=none",
        "eval_every=0",
    )
    return train_config("resnet18", "clip", batch, size, device, extra=overrides)


def shards_figures(synthetic: dict, size: Size, device: torch.device) -> dict:
    """resnet18 CLIP trained by ``lightclip.training`` from JPEG shards (every core a loader worker)
    against the same step on synthetic tensors: a ratio under 1 is the loader's cost."""
    batch = synthetic["batch"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shards"
        start = time.perf_counter()
        write_caption_shards(folder, size.shard_plan, CORES)
        written = time.perf_counter() - start
        result = train(shards_run_config(folder, batch, size, device))
        rows = [json.loads(line) for line in run_metrics(result.run_dir).read_text().splitlines() if line.strip()]
    counted = [row for row in rows if row["step"] > size.warmup + size.shard_skip] or rows[-1:]
    seconds = sum(batch / row["samples_per_s"] for row in counted)
    rate = batch * len(counted) / seconds
    return {
        "encoder": "resnet18",
        "objective": "clip",
        "batch": batch,
        "image": size.image,
        "workers": CORES,
        "steps_counted": len(counted),
        "samples_per_s": rate,
        "synthetic_samples_per_s": synthetic["samples_per_s"],
        "ratio": rate / synthetic["samples_per_s"],
        "data_wait_fraction": statistics.mean(row["data_wait_fraction"] for row in counted),
        "shards_written_s": written,
        "images": size.shard_plan.shards * size.shard_plan.per_shard,
    }


def small_figures(size: Size, device: torch.device) -> dict:
    """The demo recipe's towers at ``size.small_image`` px and ``size.small_batch``: CLIP vs LightCLIP."""
    small = replace(size, image=size.small_image, overrides=["model.text.vocab_size=1024"])
    rows = {
        objective: time_steps(
            train_config("resnet18", objective, size.small_batch, small, device, path), device, small, size.small_steps
        )
        for objective, path in SMALL_RECIPES.items()
    }
    rows["lightclip_over_clip_step_time"] = rows["lightclip"]["step_s"] / rows["clip"]["step_s"]
    return {"recipes": SMALL_RECIPES, "image": size.small_image, "batch": size.small_batch, **rows}


def speed_figures(size: Size, device: torch.device, budget: Budget) -> dict:
    """Each switch on and off for CLIP (channels-last: convolutional encoders only), the rest
    at their defaults: ``on_over_off`` > 1 means the switch pays."""
    rows: dict[str, dict] = {}
    for encoder in IMAGE_ENCODERS:
        for option, key in SPEED_OPTIONS.items():
            if option == "channels_last" and not IMAGE_ENCODERS[encoder](size.image).convolutional:
                continue
            if not budget.allows(f"speed {encoder} {option}"):
                return rows
            states = {
                state: time_steps(switched(encoder, size, device, f"{key}={state}"), device, size)["samples_per_s"]
                for state in ("true", "false")
            }
            rows.setdefault(encoder, {})[option] = {
                "on": states["true"],
                "off": states["false"],
                "on_over_off": states["true"] / states["false"],
            }
            budget.progress(f"speed {encoder} {option}", rows[encoder][option])
            free_memory(device)
    return rows


def compile_figures(size: Size, device: torch.device, rows: dict) -> dict:
    """resnet18 CLIP with ``run.compile``: the first step (compiling), then the timed rate against
    the eager row. GPU only: on a CPU the compiler alone runs for minutes (docs/benchmarks.md)."""
    if device.type != "cuda":
        return {"skipped": "GPU only: compiling on a CPU takes minutes"}
    cfg = switched("resnet18", size, device, "run.compile=true")
    step, _ = toolkit_step(cfg, device, size.warmup + size.steps + 2)
    first_step_s = run_steps(step, 0, 1, device)
    run_steps(step, 1, size.warmup, device)
    rate = cfg.optim.batch_size * size.steps / run_steps(step, size.warmup, size.warmup + size.steps, device)
    eager = rows.get("resnet18", {}).get("clip", {}).get("samples_per_s")
    return {
        "batch": cfg.optim.batch_size,
        "first_step_s": first_step_s,
        "samples_per_s": rate,
        "over_eager": rate / eager if eager else None,
    }


def switched(encoder: str, size: Size, device: torch.device, override: str) -> TrainConfig:
    return train_config(encoder, "clip", size.max_batch, size, device, extra=(override,))


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
    return {
        "alone": alone,
        "in_step": {
            "encoder": encoder,
            "batch": size.match_batch,
            "step_s": steps["step_s"],
            **(steps["matching"] or {}),
        },
    }


def loader_rate(folder: Path, tokenizer: CaptionTokenizer, size: Size, device: torch.device, split: bool) -> float:
    """Samples/s of up to ``size.loader_batches`` batches through ``finish_images`` on
    ``device``, the first batch (worker start-up) not counted."""
    cfg = StreamConfig(
        shards=str(folder),
        workers=size.workers,
        shuffle_buffer=500,
        shuffle_initial=100,
        image=MoCoConfig(size=size.image, split=split),
    )
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
    return {
        "workers": size.workers,
        "batch": size.loader_batch,
        "batches": size.loader_batches,
        "image": size.image,
        "split_device_photometric_samples_per_s": split,
        "per_sample_cpu_samples_per_s": per_sample,
        "ratio": split / per_sample,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def sections(size: Size, device: torch.device, budget: Budget, result: dict) -> dict[str, Callable[[], object]]:
    """The sections after the train rows, in the order they run (most wanted first)."""
    rows = result["train_steps"]
    return {
        "open_clip": lambda: openclip_figures(rows, size, device, budget),
        "from_shards": lambda: shards_figures(rows["resnet18"]["clip"], size, device),
        "small_regime": lambda: small_figures(size, device),
        "speed_options": lambda: speed_figures(size, device, budget),
        "matching": lambda: matching_figures(size, device),
        "loader": lambda: loader_figures(size, device),
        "compile": lambda: compile_figures(size, device, rows),
    }


def shared_memory_gib() -> float | None:
    """Size of /dev/shm, where loader workers hand their batches over (None where there is none)."""
    try:
        return shutil.disk_usage("/dev/shm").total / 2**30
    except OSError:
        return None


def run_section(section: Callable[[], object]) -> object:
    """``section()``, or its error as a row: one broken section must not cost the others."""
    try:
        return section()
    except Exception as err:  # noqa: BLE001 - recorded in the JSON and printed
        return {"error": f"{type(err).__name__}: {err}"[:1000]}


def run(
    size: Size,
    device: torch.device,
    budget_seconds: float = 360.0,
    checkpoint: Callable[[dict], None] = lambda result: None,
) -> dict:
    """Every section within the budget; ``checkpoint(result)`` after each (partial results kept)."""
    budget = Budget(budget_seconds)
    peak = peak_tflops(device_name(device))
    result = {
        "device": device_name(device),
        "size": asdict(size),
        "torch": torch.__version__,
        "peak_bf16_tflops": peak,
        "cpu_cores": CORES,
        "shared_memory_gib": shared_memory_gib(),
        "budget_seconds": budget_seconds,
        "skipped": [],
        "train_steps": train_figures(size, device, budget),
    }
    checkpoint(result)
    for name, section in sections(size, device, budget, result).items():
        if not budget.allows(name):
            result["skipped"].append(name)
            continue
        result[name] = run_section(section)
        free_memory(device)
        budget.progress(name, "done" if name in PRINTS_ITS_ROWS and "error" not in result[name] else result[name])
        checkpoint(result)
    result["needs_gpu"] = [] if device.type == "cuda" and size.name == "full" else NEEDS_GPU
    result["targets"] = {
        "matching.in_step.wait_share_of_step": "< 0.02 at batch 512",
        "minutes": "< 8",
        "open_clip.<encoder>.clip_over_open_clip": ">= 1.2 (resnet18, swin_nano)",
        "train_steps.<encoder>.lightclip_over_clip_step_time": "<= 1.10",
        "train_steps.mobilenet_v2.clip.samples_per_s": ">= 4000",
        "from_shards.ratio": ">= 0.9",
        "small_regime.lightclip_over_clip_step_time": "<= 1.25",
    }
    result["seconds"] = budget.elapsed()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes even on a GPU (the CPU always uses them)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON path (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=360.0,
        help="skip the sections that would start after this many seconds (default 360)",
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size = TINY if args.tiny or device.type != "cuda" else FULL
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write(result: dict) -> None:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    result = run(size, device, args.budget_seconds, write)
    for line in result["needs_gpu"]:
        print(f"needs a GPU (measured here at the tiny size only): {line}")
    write(result)
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
