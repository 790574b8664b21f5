"""Inference-model size and CPU latency per encoder: PyTorch eager vs onnxruntime.

Full-size towers (224 px images; text width 512, 8 layers, 77 tokens, 32k vocabulary), random
init. Parameters and MACs come from ``lightclip.summary`` (torch's FLOP counter, halved).
Latency: torch.set_num_threads(N), onnxruntime intra-op threads N, warmup, median of repeats,
reported per item at batch 1 and batch 32. ONNX files come from ``lightclip.export.export_model``
(the parity check runs as part of it). Writes bench/results/export.json.

    python bench/bench_export.py [--encoders resnet18,swin_nano] [--threads 2] [--repeats 5]
        [--batches 1,32] [--exporter auto|dynamo|torchscript]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from timing import median_seconds

from lightclip.export import ExportConfig, export_model
from lightclip.export_onnx import ort_session, random_images, random_tokens, run_session
from lightclip.models import CLIP, IMAGE_ENCODERS, ModelConfig
from lightclip.summary import count_macs, count_parameters
from pipeline.base.tokenizer import CaptionTokenizer, train_tokenizer

RESULTS = Path(__file__).parent / "results" / "export.json"


def latency_ms(model_fn, session, inputs: torch.Tensor, warmup: int, repeats: int) -> dict[str, float]:
    """Per-item milliseconds of PyTorch eager and onnxruntime on ``inputs``."""
    array = inputs.numpy()
    with torch.inference_mode():
        eager = median_seconds(lambda: model_fn(inputs), warmup, repeats)
    ort = median_seconds(lambda: run_session(session, array), warmup, repeats)
    n = inputs.shape[0]
    return {"torch_ms": 1000 * eager / n, "onnxruntime_ms": 1000 * ort / n}


def bench_encoder(encoder: str, tokenizer: Path, work: Path, args: argparse.Namespace) -> dict:
    config = ModelConfig(image_encoder=encoder)
    model = CLIP(config).eval()
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    out = export_model(model, config, tokenizer, work / encoder, ExportConfig(exporter=args.exporter))
    export_s = time.perf_counter() - start
    meta = json.loads((out / "config.json").read_text())["onnx"]["towers"]
    image_session = ort_session(out / "image_encoder.onnx", args.threads)
    text_session = ort_session(out / "text_encoder.onnx", args.threads)
    row = {
        "parameters": {
            "image_tower": count_parameters(model.visual, model.image_projection),
            "text_tower": count_parameters(model.text, model.text_projection),
            "inference_model": count_parameters(model),
        },
        "macs": {
            "image_224": count_macs(model.encode_image, random_images(config, 1, generator)),
            "text_77": count_macs(model.encode_text, random_tokens(config, 1, generator)),
        },
        "export": {
            "seconds": export_s,
            **{k: {"exporter": v["exporter"], "max_abs_diff": v["max_abs_diff"]} for k, v in meta.items()},
        },
        "image_latency": {},
        "text_latency": {},
    }
    for batch in args.batches:
        images = random_images(config, batch, generator)
        tokens = random_tokens(config, batch, generator)
        row["image_latency"][f"batch_{batch}"] = latency_ms(
            model.encode_image, image_session, images, args.warmup, args.repeats
        )
        row["text_latency"][f"batch_{batch}"] = latency_ms(
            model.encode_text, text_session, tokens, args.warmup, args.repeats
        )
        print(encoder, batch, row["image_latency"][f"batch_{batch}"], row["text_latency"][f"batch_{batch}"], flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default=",".join(IMAGE_ENCODERS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--exporter", choices=["auto", "dynamo", "torchscript"], default="auto")
    parser.add_argument("--batches", type=lambda t: [int(b) for b in t.split(",")], default=[1, 32])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "settings": {
            "exporter": args.exporter,
            "batches": args.batches,
            "image_size": 224,
            "text": "width 512, 8 layers, context 77, vocab 32000",
            "warmup": args.warmup,
            "repeats": args.repeats,
            "statistic": "median, per item",
        },
        "encoders": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = Path(tmp) / "tokenizer.json"
        texts = [f"a photo of a thing number {i}" for i in range(200)]
        CaptionTokenizer(train_tokenizer(texts, vocab_size=300)).save(tokenizer)
        for encoder in args.encoders.split(","):
            results["encoders"][encoder] = bench_encoder(encoder, tokenizer, Path(tmp), args)
            results["machine"]["load_average_at_end"] = os.getloadavg()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")  # after each encoder
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
