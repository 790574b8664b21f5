"""Loader throughput: pipeline.stream (2 workers) against a minimal open_clip-style webdataset
loader on the same shards. Writes bench/results/loader.json (samples/s and their ratio).

Both decode the same JPEGs and apply the same per-sample MoCo-v2 transform; a second figure
adds the stream's default split path (crop/flip in workers, photometric ops batched in the
main process, counted in its time).
"""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.base.augment_image import MoCoConfig, moco_transform  # noqa: E402
from pipeline.base.shards import Sample, write_manifest, write_shard  # noqa: E402
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer, train_tokenizer  # noqa: E402
from pipeline.stream import StreamConfig, build_loader, finish_images  # noqa: E402

SHARDS, PER_SHARD, SIDE, OUT, BATCH, WORKERS = 8, 160, 256, 128, 32, 2


def make_shards(folder: Path) -> None:
    """SHARDS shards of PER_SHARD random JPEGs with captions, written by ``pipeline.base.shards``."""
    rng = np.random.default_rng(0)

    def samples(s: int):
        for i in range(PER_SHARD):
            pixels = rng.integers(0, 255, (SIDE // 8, SIDE // 8, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).resize((SIDE, SIDE)).save(buf, format="JPEG", quality=90)
            yield Sample(f"{s:05d}{i:04d}", buf.getvalue(), f"a photo number {i} of shard {s}", {}, [])

    infos = [write_shard(folder, s, samples(s)) for s in range(SHARDS)]
    write_manifest(folder, infos, {"tokenizer": TOKENIZER_FILE})
    texts = [f"a photo number {i} of shard {s}" for s in range(SHARDS) for i in range(50)]
    CaptionTokenizer(train_tokenizer(texts, 500, 1), 77).save(folder / TOKENIZER_FILE)


class Tokenize:
    def __init__(self, tokenizer: CaptionTokenizer):
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> torch.Tensor:
        return torch.from_numpy(self.tokenizer.encode([text])[0])


def open_clip_style(folder: Path, tokenizer: CaptionTokenizer) -> float:
    """open_clip's webdataset pipeline, trimmed to what matters for throughput."""
    urls = str(folder / f"{{00000..{SHARDS - 1:05d}}}.tar")
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(urls),
        wds.split_by_worker,
        wds.tarfile_to_samples(handler=wds.warn_and_continue),
        wds.shuffle(1000, initial=100),
        wds.decode("pilrgb", handler=wds.warn_and_continue),
        wds.rename(image="jpg;png;jpeg;webp", text="txt"),
        wds.map_dict(image=moco_transform(MoCoConfig(size=OUT)), text=Tokenize(tokenizer)),
        wds.to_tuple("image", "text"),
        wds.batched(BATCH, partial=False),
    )
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=WORKERS)
    return timed(loader, lambda b: b[0])


def stream(folder: Path, tokenizer: CaptionTokenizer, split: bool) -> float:
    cfg = StreamConfig(
        shards=str(folder),
        workers=WORKERS,
        shuffle_buffer=1000,
        shuffle_initial=100,
        image=MoCoConfig(size=OUT, split=split),
    )
    loader = build_loader(cfg, tokenizer, BATCH)
    return timed(loader.epoch(0), lambda b: finish_images(b, cfg.image, "cpu"))


def timed(batches, finish) -> float:
    start, samples = time.perf_counter(), 0
    for batch in batches:
        samples += finish(batch).shape[0]
    return samples / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_shards(folder)
        tokenizer = CaptionTokenizer.from_file(folder, 77)
        baseline = open_clip_style(folder, tokenizer)
        same = stream(folder, tokenizer, split=False)
        split = stream(folder, tokenizer, split=True)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared)",
        "samples": SHARDS * PER_SHARD,
        "image": f"{SIDE}px JPEG -> {OUT}px",
        "batch": BATCH,
        "workers": WORKERS,
        "open_clip_style_samples_per_s": round(baseline, 1),
        "stream_samples_per_s": round(same, 1),
        "stream_split_samples_per_s": round(split, 1),
        "ratio": round(same / baseline, 3),
        "ratio_split": round(split / baseline, 3),
        "target": ">= 1.0",
    }
    out = ROOT / "bench" / "results" / "loader.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
