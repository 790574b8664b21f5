"""Training step time of LightCLIP over its CLIP baseline, per encoder, batch 32 on CPU.

Full-size text tower (width 512, 8 layers, 8 heads, 77 tokens); images at IMAGE_SIZE px
(default 128: at 224 px one CPU step takes several seconds per encoder and objective; set
LIGHTCLIP_BENCH_SIZE=224 for the paper's size). Writes bench/results/train_step.json.
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

from lightclip.losses import LossConfig  # noqa: E402
from lightclip.models import IMAGE_ENCODERS, ModelConfig  # noqa: E402
from lightclip.train import DistInfo, build_parts, train_step  # noqa: E402
from lightclip.trainconfig import RunConfig, TrainConfig  # noqa: E402

IMAGE_SIZE = int(os.environ.get("LIGHTCLIP_BENCH_SIZE", "128"))
BATCH, VOCAB, WARMUP, REPEATS = 32, 32000, 1, 3
CLIP_LOSS = LossConfig(instance_weight=1, token_weight=0, mlm_weight=0, label_mode="one_hot")


def setup(encoder: str, loss: LossConfig):
    model = ModelConfig(image_encoder=encoder, image_size=IMAGE_SIZE)
    model.text.vocab_size = VOCAB
    cfg = TrainConfig(model=model, loss=loss, run=RunConfig(precision="fp32", seed=0))
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


def step_seconds(encoder: str) -> tuple[float, float]:
    """Fastest step of each objective, their steps interleaved (the machine is shared: the
    minimum is the figure least disturbed by other load)."""
    runs = [setup(encoder, LossConfig()), setup(encoder, CLIP_LOSS)]
    times: list[list[float]] = [[], []]
    micro = [batch()]
    for step in range(WARMUP + REPEATS):
        for which, (cfg, info, parts) in enumerate(runs):
            start = time.perf_counter()
            train_step(parts, cfg, info, micro, step, 100)
            if step >= WARMUP:
                times[which].append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def main() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = {}
    for encoder in IMAGE_ENCODERS:
        lightclip, clip = step_seconds(encoder)
        rows[encoder] = {"lightclip_s": round(lightclip, 3), "clip_s": round(clip, 3), "ratio": round(lightclip / clip, 3)}
        print(encoder, rows[encoder], flush=True)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), {torch.get_num_threads()} threads",
        "batch": BATCH, "image_size": IMAGE_SIZE, "text": "width 512, 8 layers, 8 heads, 77 tokens",
        "precision": "fp32", "statistic": f"min of {REPEATS} interleaved steps after {WARMUP} warm-up",
        "encoders": rows, "target": "ratio <= 1.3",
    }  # fmt: skip
    (ROOT / "bench" / "results" / "train_step.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
