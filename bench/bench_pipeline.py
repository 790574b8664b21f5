"""Data pipeline benchmark: end-to-end build vs bare img2dataset, and caption augmentation speed.

2,000 JPEGs served on 127.0.0.1 (``BENCH_IMAGES=20000`` for the larger run; that one writes
pipeline_20000.json). Both runs use 2 processes with the same download threads and rows per
shard/unit. Writes bench/results/pipeline.json. Targets: build/img2dataset <= 1.15,
augmentation >= 2,000 captions per second per core (CPU time, so other load does not count).
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

IMAGES = int(os.environ.get("BENCH_IMAGES", 2000))
PROCESSES, THREADS, PER_SHARD = 2, 16, 250
WORDS = (
    "dog cat beach sunset red car old church city grandmother cooking dinner family mountain "
    "lake tree river bridge street night light flower garden house window boat sea sky cloud "
    "snow winter summer children playing park wooden table glass vase bright quiet"
).split()


def make_images(folder: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    names = []
    for i in range(count):
        w, h = int(rng.integers(300, 500)), int(rng.integers(240, 400))
        base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * rng.random(3)[None, None, :]
        noise = rng.normal(0, 12, (h, w, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        name = f"{i:05d}.jpg"
        Image.fromarray(pixels).save(folder / name, quality=85)
        names.append(name)
    return names


def captions(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) for _ in range(count)]


def run_img2dataset(table: Path, out: Path) -> float:
    from img2dataset import download

    start = time.perf_counter()
    download(
        url_list=str(table),
        input_format="parquet",
        url_col="url",
        caption_col="caption",
        output_folder=str(out),
        output_format="webdataset",
        image_size=256,
        resize_mode="keep_ratio",
        processes_count=PROCESSES,
        thread_count=THREADS,
        number_sample_per_shard=PER_SHARD,
        timeout=10,
        retries=0,
        enable_wandb=False,
        distributor="multiprocessing",
        disallowed_header_directives=[],
    )
    return time.perf_counter() - start


def run_pipeline(table: Path, out: Path, host_port: str) -> tuple[float, dict]:
    from pipeline.base.configs import from_dict, load_recipe
    from pipeline.build import BuildConfig, build

    overrides = [
        f"output={out}",
        f"metadata.path={table}",
        f"filters.allow_hosts=['{host_port}']",
        "download.image_size=256",
        f"download.thread_count={THREADS}",
        f"download.samples_per_unit={PER_SHARD}",
        f"shards.samples_per_shard={PER_SHARD}",
        "download.timeout=10",
        "download.min_image_size=0",
        "augment.variants=4",
        f"cluster.n_workers={PROCESSES}",
        "keep_work=false",
        "progress=false",
    ]
    config = from_dict(BuildConfig, load_recipe(REPO / "recipes/data/demo.yaml", overrides))
    start = time.perf_counter()
    result = build(config, log=lambda _: None)
    return time.perf_counter() - start, result.stats


def augment_speed(count: int = 3000) -> dict:
    from pipeline.augment_text import AugmentConfig, augmenters, caption_variants

    config = AugmentConfig(variants=4)
    augmenters(config)
    texts = captions(count, seed=1)
    cpu, wall = time.process_time(), time.perf_counter()
    for i, text in enumerate(texts):
        caption_variants(f"{i:012d}", text, config)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    single = {}
    for method in config.methods:
        one = AugmentConfig(variants=1, methods=(method,))
        augmenters(one)
        t = time.process_time()
        for i, text in enumerate(texts[:1000]):
            caption_variants(f"{i}", text, one)
        single[method] = round(1000 / (time.process_time() - t), 1)
    return {
        "captions": count,
        "variants_per_caption": config.variants,
        "captions_per_cpu_s": round(count / cpu, 1),
        "variants_per_cpu_s": round(count * config.variants / cpu, 1),
        "captions_per_wall_s": round(count / wall, 1),
        "single_method_variants_per_cpu_s": single,
        "target_captions_per_cpu_s": 2000,
    }


def main() -> int:
    from lightclip_demo.localserver import LocalServer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = make_images(root / "images", IMAGES)
        with LocalServer(root / "images") as server:
            table = root / "urls.parquet"
            pd.DataFrame({"url": [server.url(n) for n in names], "caption": captions(IMAGES)}).to_parquet(table)
            bare_s = run_img2dataset(table, root / "img2dataset")
            ours_s, stats = run_pipeline(table, root / "pipeline", server.host_port)
        augment = augment_speed()
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), {platform.python_version()}",
        "load_average": os.getloadavg(),
        "images": IMAGES,
        "processes": PROCESSES,
        "threads_per_process": THREADS,
        "rows_per_shard_or_unit": PER_SHARD,
        "img2dataset_s": round(bare_s, 2),
        "pipeline_s": round(ours_s, 2),
        "ratio": round(ours_s / bare_s, 3),
        "target_ratio": 1.15,
        "pipeline_kept": stats["kept"],
        "pipeline_includes": "filter, dedup, download, 4 variants, repack, tokenizer",
        "augment": augment,
    }
    name = "pipeline.json" if IMAGES == 2000 else f"pipeline_{IMAGES}.json"
    out = REPO / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
