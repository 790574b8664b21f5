"""Throughput of the MoCo-v2 augmentation: split worker half vs the per-sample reference (one
core), and the batched photometric half on a device. Writes bench/results/augment.json.

    python bench/bench_augment.py                 # worker figures + device side on CPU
    python bench/bench_augment.py --device cuda   # adds the CUDA device-side figure
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from tqdm import tqdm

from pipeline.base.augment_image import (
    MoCoConfig,
    collate_split,
    moco_transform,
    split_worker_transform,
)
from pipeline.base.photometric import apply_photometric

RESULTS = Path(__file__).resolve().parent / "results" / "augment.json"
WORKER_TARGET_SPEEDUP = 3.0
CUDA_TARGET_IMAGES_PER_S = 20_000


def make_jpegs(count: int, side: int = 256, seed: int = 0) -> list[bytes]:
    """Write ``count`` photo-like JPEGs with PIL to a temp dir and read their bytes back."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    blobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            freq = rs.uniform(5, 40, size=(3, 2))
            phase = rs.uniform(0, 6.3, size=3)
            pixels = (
                np.stack(
                    [128 + 100 * np.sin(xx / f[0] + p) * np.cos(yy / f[1] - p) for f, p in zip(freq, phase)],
                    -1,
                )
                + rs.randn(side, side, 3) * 8
            )
            path = Path(tmp) / f"{i:05d}.jpg"
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
            blobs.append(path.read_bytes())
    return blobs


def _decode(blob: bytes) -> Image.Image:
    return Image.open(io.BytesIO(blob)).convert("RGB")


def per_core_rates(blobs: list[bytes], stages: dict, passes: int) -> dict[str, float]:
    """Images/s of decode + each stage in this process, interleaved image by image so that
    load from other processes affects every stage alike (after a short warm-up)."""
    names = list(stages)
    for i, blob in enumerate(blobs[:20]):
        for name in names:
            stages[name](_decode(blob), i)
    spent = dict.fromkeys(names, 0.0)
    for p in range(passes):
        for i, blob in enumerate(tqdm(blobs, desc=f"worker paths, pass {p + 1}", leave=False)):
            for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate who goes first
                start = time.perf_counter()
                stages[name](_decode(blob), i)
                spent[name] += time.perf_counter() - start
    return {name: passes * len(blobs) / seconds for name, seconds in spent.items()}


def worker_figures(blobs: list[bytes], config: MoCoConfig, passes: int) -> dict:
    torch.set_num_threads(1)
    reference = moco_transform(config)
    split = split_worker_transform(config, seed=0)
    stages = {
        "decode_only": lambda image, i: image,
        "reference_per_sample": lambda image, i: reference(image),
        "split_worker": lambda image, i: split(image, key=i, epoch=0),
    }
    rates = per_core_rates(blobs, stages, passes)
    speedup = rates["split_worker"] / rates["reference_per_sample"]
    return {
        "images_per_s_per_core": {k: round(v, 1) for k, v in rates.items()},
        "ms_per_image": {k: round(1000 / v, 3) for k, v in rates.items()},
        "split_speedup": round(speedup, 2),
        "target_speedup": WORKER_TARGET_SPEEDUP,
        "meets_target": speedup >= WORKER_TARGET_SPEEDUP,
        "threads": 1,
        "jpeg_side": 256,
        "jpegs": len(blobs),
        "passes": passes,
    }


def device_batch(blobs: list[bytes], config: MoCoConfig, batch: int):
    worker = split_worker_transform(config, seed=1)
    samples = [worker(_decode(blobs[i % len(blobs)]), key=i) for i in range(batch)]
    return collate_split(samples)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_figures(blobs, config: MoCoConfig, device: torch.device, batch: int, iters: int) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    images, params = device_batch(blobs, config, batch)
    images, params = images.to(device), params.to(device)
    for _ in range(1 if device.type == "cpu" else 3):  # warm-up (cuDNN algorithm choice)
        apply_photometric(images, params, config)
    _sync(device)
    start = time.perf_counter()
    for _ in tqdm(range(iters), desc=f"apply_photometric on {device.type}", leave=False):
        apply_photometric(images, params, config)
    _sync(device)
    rate = iters * batch / (time.perf_counter() - start)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    figure = {
        "device": name,
        "images_per_s": round(rate, 1),
        "batch": batch,
        "size": config.size,
        "iters": iters,
        "threads": torch.get_num_threads(),
        "input": "uint8 batch + params already on the device; output normalised float32",
    }
    if device.type == "cuda":
        figure.update(
            target_images_per_s=CUDA_TARGET_IMAGES_PER_S,
            meets_target=rate >= CUDA_TARGET_IMAGES_PER_S,
        )
    return figure


def _cpu_name() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, load {load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--jpegs", type=int, default=300)
    parser.add_argument("--passes", type=int, default=2, help="passes over the JPEGs per worker path")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=0, help="device iterations (0: 2 on CPU, 50 on CUDA)")
    parser.add_argument("--skip-worker", action="store_true", help="keep the stored worker figures")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA device")
    config = MoCoConfig()
    blobs = make_jpegs(args.jpegs)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.update(torch=torch.__version__, torchvision=torchvision.__version__, config=vars(config))
    if not args.skip_worker:
        results["worker"] = worker_figures(blobs, config, args.passes)
        results["worker"]["machine"] = _cpu_name()
    iters = args.iters or (50 if device.type == "cuda" else 2)
    results.setdefault("device_side", {})[device.type] = device_figures(blobs, config, device, args.batch, iters)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
