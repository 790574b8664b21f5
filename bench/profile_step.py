"""Where a LightCLIP train step's time goes: each objective term's share, then the top operators.

    python bench/profile_step.py --encoder resnet18 --batch 512      # on a GPU: bf16, 224 px
    python bench/profile_step.py --tiny                              # anywhere, in seconds

Times train steps of the shipped recipe (synthetic data already on the device, as in
``bench_gpu.py``) with the objective terms switched on one at a time: CLIP's recipe; LightCLIP's
with its instance loss alone; + token; + MLM/fusion; all of them. Then profiles the full
LightCLIP step and lists the operators with the most self time on the device (the CPU without a
GPU). Writes bench/results/profile_step.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench_gpu  # noqa: E402

from lightclip.training import DistInfo, build_parts, train_step  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "profile_step.json"
TERMS: dict[str, tuple[str, list[str]]] = {
    "CLIP recipe": ("clip", []),
    "LightCLIP instance loss only": ("lightclip", ["loss.token_weight=0", "loss.mlm_weight=0"]),
    "+ token": ("lightclip", ["loss.mlm_weight=0"]),
    "+ MLM/fusion": ("lightclip", ["loss.token_weight=0"]),
    "LightCLIP (all terms)": ("lightclip", []),
}


def term_times(encoder: str, batch: int, size: bench_gpu.Size, device: torch.device) -> dict[str, dict]:
    """Step seconds (and the matching's wait) of each row of ``TERMS``."""
    rows = {}
    for name, (objective, overrides) in TERMS.items():
        sized = replace(size, overrides=[*size.overrides, *overrides])
        rows[name] = bench_gpu.time_steps(
            bench_gpu.train_config(encoder, objective, batch, sized, device), device, sized
        )
        print(f"{name:32s} {rows[name]['step_s'] * 1e3:9.1f} ms/step", flush=True)
    return rows


def top_operators(encoder: str, batch: int, size: bench_gpu.Size, device: torch.device, limit: int) -> list[dict]:
    """The full LightCLIP step's operators by self time on ``device`` (a few profiled steps)."""
    cfg = bench_gpu.train_config(encoder, "lightclip", batch, size, device)
    info = DistInfo(device=device, threads=torch.get_num_threads())
    parts = build_parts(cfg, info)
    micro = [bench_gpu.synthetic_batch(cfg, device)]
    total = size.warmup + size.steps
    for step in range(size.warmup):
        train_step(parts, cfg, info, micro, step, total)
    bench_gpu.synchronize(device)
    on_device = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])) as prof:
        for step in range(size.warmup, total):
            train_step(parts, cfg, info, micro, step, total)
        bench_gpu.synchronize(device)

    def self_time(event) -> float:
        return event.self_device_time_total if on_device else event.self_cpu_time_total

    events = sorted((e for e in prof.key_averages() if self_time(e) > 0), key=self_time, reverse=True)
    return [
        {
            "name": e.key,
            "calls": e.count,
            "self_device_ms": e.self_device_time_total / 1e3 / size.steps,
            "self_cpu_ms": e.self_cpu_time_total / 1e3 / size.steps,
        }
        for e in events[:limit]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes even on a GPU (the CPU always uses them)")
    parser.add_argument("--top", type=int, default=25, help="operators to list")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON path (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size = bench_gpu.TINY if args.tiny or device.type != "cuda" else bench_gpu.FULL
    batch = args.batch if size is bench_gpu.FULL else size.max_batch
    start = time.perf_counter()
    result = {
        "device": bench_gpu.device_name(device),
        "torch": torch.__version__,
        "encoder": args.encoder,
        "batch": batch,
        "image": size.image,
        "terms": term_times(args.encoder, batch, size, device),
    }
    result["top_operators"] = top_operators(args.encoder, batch, size, device, args.top)
    for row in result["top_operators"]:
        print(f"{row['self_device_ms']:9.2f} dev ms {row['self_cpu_ms']:9.2f} cpu ms {row['calls']:6d}x  {row['name']}")
    result["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
