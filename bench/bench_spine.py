"""Cost of the LightCLIP objectives inside one training step, per encoder, on this CPU.

Writes bench/results/spine.json: forward+backward time of one step at batch 32 split into
towers, instance, token (and the matching alone) and MLM; matching time for 256 and 4096
pairs of 49 x 32 tokens. Each term's cost is measured by ablation against the CLIP step.

    python bench/bench_spine.py [--image-size 224] [--batch 32] [--repeats 3] [--caption-tokens 24]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import torch
from timing import median_seconds

from lightclip.losses import LossConfig, batched_matching, instance_loss
from lightclip.models import IMAGE_ENCODERS, ModelConfig
from lightclip.task import LightCLIP, LightCLIPObjective

RESULTS = Path(__file__).parent / "results" / "spine.json"


def median_time(fn, repeats: int) -> float:
    return median_seconds(fn, warmup=1, repeats=repeats)  # warm-up: numba compile, allocator


def captions(batch: int, length: int, context: int, vocab: int) -> torch.Tensor:
    """Captions of about ``length`` tokens padded to ``context`` (web captions are short)."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.zeros(batch, context, dtype=torch.long)
    for row in range(batch):
        n = int(torch.randint(max(2, length // 2), length + 1, (1,), generator=g))
        tokens[row, 0], tokens[row, n + 1] = 2, 3
        tokens[row, 1 : n + 1] = torch.randint(4, vocab, (n,), generator=g)
    return tokens


def step_time(model: LightCLIP, loss: LossConfig, images, tokens, repeats: int) -> float:
    objective = LightCLIPObjective(loss)
    inputs = objective.forward_inputs(model, tokens, seed=0)  # what the active terms ask for, as in training

    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model(images, inputs.tokens, **inputs.extra)
        objective(out, progress=0.9)["loss"].backward()

    return median_time(step, repeats)


def instance_time(batch: int, dim: int, repeats: int) -> float:
    image = torch.nn.functional.normalize(torch.randn(batch, dim), dim=1).requires_grad_()
    text = torch.nn.functional.normalize(torch.randn(batch, dim), dim=1).requires_grad_()
    scale = torch.tensor(14.0, requires_grad=True)
    return median_time(lambda: instance_loss(image, text, scale, "importance").backward(), repeats)


def matching_time(pairs: int, repeats: int, clock=time.perf_counter) -> float:
    rng = np.random.default_rng(0)
    cost = rng.uniform(0, 2, size=(pairs, 49, 32)).astype(np.float32)  # as the token loss passes it
    valid = np.ones((pairs, 32), dtype=bool)
    return median_seconds(lambda: batched_matching(cost, valid), 1, repeats, clock)


def matching_figures() -> dict[str, float]:
    """Wall time on all cores, and CPU time on one core (steady however loaded the machine is)."""
    figures = {f"{n}_pairs_ms": 1e3 * matching_time(n, 5) for n in (256, 4096)}
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    figures["4096_pairs_one_core_cpu_ms"] = 1e3 * matching_time(4096, 5, time.process_time)
    numba.set_num_threads(threads)
    return figures


def bench_encoder(name: str, args: argparse.Namespace) -> dict:
    config = replace(ModelConfig(), image_encoder=name, image_size=args.image_size)
    model = LightCLIP(config).train()
    images = torch.randn(args.batch, 3, args.image_size, args.image_size)
    tokens = captions(args.batch, args.caption_tokens, config.text.context_length, config.text.vocab_size)
    clip_only = LossConfig(instance_weight=1, token_weight=0, mlm_weight=0, label_mode="one_hot")
    with_token = replace(clip_only, token_weight=0.1)
    with_mlm = replace(clip_only, mlm_weight=0.1)
    t_clip = step_time(model, clip_only, images, tokens, args.repeats)
    t_token = step_time(model, with_token, images, tokens, args.repeats) - t_clip
    t_mlm = step_time(model, with_mlm, images, tokens, args.repeats) - t_clip
    t_full = step_time(model, LossConfig(), images, tokens, args.repeats)
    t_instance = instance_time(args.batch, config.embed_dim, args.repeats)
    t_match = matching_time(args.batch, args.repeats)
    # Robust to the split's noise: everything beyond the towers is the three terms.
    terms = t_full - t_clip + t_instance
    return {
        "step_clip_s": t_clip,
        "step_lightclip_s": t_full,
        "towers_s": t_clip - t_instance,
        "instance_s": t_instance,
        "token_s": t_token,
        "token_matching_alone_s": t_match,
        "mlm_s": t_mlm,
        "lightclip_terms_share_of_step": terms / t_full,
        "lightclip_over_clip": t_full / t_clip,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--caption-tokens", type=int, default=24, help="longest caption in words+pieces")
    parser.add_argument(
        "--encoders",
        default=",".join(IMAGE_ENCODERS),
        help="comma-separated; empty: the matching only (the step split is kept from the last run)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    matching = matching_figures()
    print("matching (49 x 32 tokens):", {k: round(v, 1) for k, v in matching.items()})
    encoders = {}
    for name in filter(None, args.encoders.split(",")):
        encoders[name] = bench_encoder(name, args)
        print(name, {k: round(v, 3) for k, v in encoders[name].items()})
    if not encoders and RESULTS.is_file():
        encoders = {**json.loads(RESULTS.read_text()).get("encoders", {}), "note": "step split from an earlier run"}
    result = {
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "settings": vars(args),
        "matching": matching,
        "targets": {"matching_4096_pairs_ms": 50, "lightclip_terms_share_of_step": 0.30},
        "load_average_1min": os.getloadavg()[0],
        "encoders": encoders,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
