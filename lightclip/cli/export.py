"""`python -m lightclip export --checkpoint C --out DIR`: inference model as safetensors + ONNX."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lightclip.export import ExportConfig, ExportError, export_model


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="training checkpoint step_*.pt, or a run directory (its latest checkpoint)")
    parser.add_argument("--out", required=True, type=Path, help="export directory to create")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer.json (default: the one found beside the checkpoint)")
    parser.add_argument("--exporter", choices=["auto", "dynamo", "torchscript"], default="auto",
                        help="ONNX exporter; auto tries dynamo, then TorchScript (default: auto)")
    parser.add_argument("--opset", type=int, default=ExportConfig.opset, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=ExportConfig.tolerance,
                        help="max |onnxruntime - PyTorch| on normalised embeddings (default: %(default)g)")
    parser.add_argument("--no-onnx", action="store_true", help="write safetensors, config and tokenizer only")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("lightclip").setLevel(logging.INFO)
    # Imported here: a build without the trainer still offers the other verbs.
    from lightclip import checkpoint

    config = ExportConfig(onnx=not args.no_onnx, exporter=args.exporter, opset=args.opset,
                          tolerance=args.tolerance, overwrite=args.overwrite)
    try:
        path = args.checkpoint
        if path.is_dir():  # a run directory: its latest checkpoint
            path = checkpoint.latest_checkpoint(path) or path
        model, model_config = checkpoint.load_inference_model(path)
        tokenizer = args.tokenizer or checkpoint.find_tokenizer(path)
        out = export_model(model, model_config, tokenizer, args.out, config)
    except (ExportError, checkpoint.CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"lightclip export: {err}", file=sys.stderr)
        return 1
    print(f"exported {model_config.image_encoder} to {out}")
    return 0
