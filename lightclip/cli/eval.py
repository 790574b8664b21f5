"""`python -m lightclip eval`: zero-shot classification and retrieval of a checkpoint."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from lightclip.evaluation import (
    EvalConfig,
    evaluate_model,
    known_names,
    markdown_table,
    write_results,
)
from lightclip.evaluation.sources import UnknownDataset, check_name
from pipeline.tokenizer import CaptionTokenizer


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint file written by `lightclip train`, or a run directory (its latest)")
    parser.add_argument(
        "--datasets",
        default="cifar10",
        help=f"comma-separated: {','.join(known_names())}, imagefolder:PATH, karpathy:PATH, wds:PATH, wds/<name>",
    )
    parser.add_argument("--root", default="data/eval", help="directory holding ROOT/<dataset>/ (default data/eval)")
    parser.add_argument("--out", default=None, help="where results.json and results.md go (default: <checkpoint dir>/eval)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer.json (default: the one found with the checkpoint)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image-size", type=int, default=None, help="default: the model's")
    parser.add_argument("--download", action="store_true", help="let torchvision download sets that it can")
    parser.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    parser.add_argument("--strict", action="store_true", help="stop at the first unexpected error")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def default_out_dir(checkpoint: Path) -> Path:
    """``<run dir>/eval/<checkpoint name>``, the run dir being the one above ``checkpoints/``."""
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run_dir / "eval" / checkpoint.stem


def _tokenizer(args: argparse.Namespace, find_tokenizer, context_length: int) -> CaptionTokenizer:
    if args.tokenizer:
        return CaptionTokenizer.from_file(args.tokenizer, context_length)
    found = find_tokenizer(args.checkpoint)
    if isinstance(found, CaptionTokenizer):
        return found
    return CaptionTokenizer.from_file(found, context_length)


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    try:
        for name in names:
            check_name(name)
    except UnknownDataset as err:
        print(f"lightclip eval: {err}", file=sys.stderr)
        return 2
    from lightclip.checkpoint import find_tokenizer, latest_checkpoint, load_inference_model

    checkpoint = Path(args.checkpoint)
    if checkpoint.is_dir():  # a run directory: its latest checkpoint
        checkpoint = latest_checkpoint(checkpoint) or checkpoint
    if not checkpoint.is_file():
        print(f"lightclip eval: no checkpoint at {args.checkpoint}", file=sys.stderr)
        return 2
    args.checkpoint = str(checkpoint)
    model, model_config = load_inference_model(args.checkpoint)
    model = model.to(args.device).eval()
    tokenizer = _tokenizer(args, find_tokenizer, model_config.text.context_length)
    config = EvalConfig(
        datasets=names,
        root=args.root,
        batch_size=args.batch_size,
        num_workers=args.workers,
        image_size=args.image_size or model_config.image_size,
        context_length=model_config.text.context_length,
        download=args.download,
        amp=not args.no_amp,
        progress=not args.quiet,
        strict=args.strict,
    )
    started = time.time()
    results = evaluate_model(model, tokenizer, config, args.device)
    meta = {
        "checkpoint": str(args.checkpoint),
        "root": str(args.root),
        "image_encoder": model_config.image_encoder,
        "image_size": config.image_size,
        "device": str(args.device),
        "seconds": round(time.time() - started, 1),
    }
    out = Path(args.out) if args.out else default_out_dir(checkpoint)
    json_path, md_path = write_results(results, out, meta)
    print(markdown_table(results))
    failed = [name for name, r in results.items() if "error" in r]
    for name in failed:
        print(f"\n{results[name]['error']}", file=sys.stderr)
    print(f"results: {json_path} and {md_path}")
    return 1 if failed else 0
