"""`python -m lightclip eval [--recipe R] [--checkpoint C | --model openclip:ARCH[:PATH]] [key=value ...]`:
zero-shot classification and retrieval of a checkpoint (a run directory: its latest) or of an
open_clip model (``lightclip.interop.openclip_load``), on the same sets.

Keys: ``checkpoint``, ``out`` (default ``<run dir>/eval/<step>``), ``tokenizer`` (default: the
run's), ``device`` (``auto``) and ``eval.*`` (:class:`lightclip.evalconfig.EvalConfig`). Flags
are shorthands, e.g. ``--datasets a,b`` is ``eval.datasets=[a,b]``; an override given too wins.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lightclip.cli.options import (
    add_recipe_arguments,
    comma_list,
    flag_values,
    load_config,
    pick_device,
)
from lightclip.evalconfig import EvalConfig, check_device, check_eval_config
from pipeline.base.configs import ConfigError

FLAGS = {  # flag dest -> key
    "checkpoint": "checkpoint",
    "model": "model",
    "out": "out",
    "tokenizer": "tokenizer",
    "device": "device",
    "datasets": "eval.datasets",
    "root": "eval.root",
    "batch_size": "eval.batch_size",
    "workers": "eval.num_workers",
    "image_size": "eval.image_size",
    "download": "eval.download",
    "amp": "eval.amp",
    "strict": "eval.strict",
    "progress": "eval.progress",
}


@dataclass
class EvalCommand:
    """What `lightclip eval` evaluates, where the results go and how (``eval``)."""

    checkpoint: str = ""
    model: str = ""  # openclip:ARCH[:PATH], instead of a checkpoint
    out: str = ""
    tokenizer: str = ""
    device: str = "auto"
    eval: EvalConfig = field(default_factory=EvalConfig)


def configure(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser, "eval.batch_size=16 eval.recall_k=[1,5]")
    parser.add_argument(
        "--checkpoint", help="checkpoint file written by `lightclip train`, or a run directory (its latest)"
    )
    parser.add_argument(
        "--model",
        help="an open_clip model instead: openclip:ARCH (random init), openclip:ARCH:WEIGHTS "
        "or openclip:local-dir:DIR (needs the interop extra)",
    )
    parser.add_argument(
        "--datasets",
        type=comma_list,
        help="comma-separated: cifar10 (default), the other CLIP_benchmark names, flickr30k, "
        "mscoco_captions, imagefolder:PATH, karpathy:PATH, wds:PATH, wds/<name>",
    )
    parser.add_argument("--root", help="directory holding ROOT/<dataset>/ (default data/eval)")
    parser.add_argument("--out", help="where results.json and results.md go (default: <run dir>/eval/<step>)")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one found with the checkpoint)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int, help="DataLoader workers")
    parser.add_argument("--device", help="cpu, cuda, ... (default auto: cuda when available)")
    parser.add_argument("--image-size", type=int, help="default: the model's")
    parser.add_argument(
        "--download", action="store_const", const=True, help="let torchvision download sets that it can"
    )
    parser.add_argument("--no-amp", dest="amp", action="store_const", const=False, help="full precision on CUDA")
    parser.add_argument("--strict", action="store_const", const=True, help="stop at the first unexpected error")
    parser.add_argument("--quiet", dest="progress", action="store_const", const=False, help="no progress bars")


def command_config(args: argparse.Namespace) -> EvalCommand:
    """The verb's config from ``args``, checked before any model is loaded (and, but for the
    dataset names, before torch is imported: a bad option answers at once)."""
    config = load_config(EvalCommand, args.recipe, args.overrides, flag_values(args, FLAGS))
    if not config.checkpoint and not config.model:
        raise ConfigError(
            "no checkpoint: give --checkpoint <run dir or step_*.pt> (or checkpoint=...), "
            "or --model openclip:ARCH[:PATH]"
        )
    if config.checkpoint and config.model:
        raise ConfigError("give --checkpoint or --model, not both")
    if config.model:
        from lightclip.interop.openclip_load import parse_spec  # imports torch: only for --model

        parse_spec(config.model)
        if config.tokenizer or config.eval.image_size:
            raise ConfigError(
                "--tokenizer and --image-size go with --checkpoint: an open_clip model "
                "uses its own tokenizer and preprocessing"
            )
    check_eval_config(config.eval)
    check_device(config.device, "--device")
    if config.tokenizer and not Path(config.tokenizer).is_file():
        raise ConfigError(f"--tokenizer {config.tokenizer} is not a file: give the run's tokenizer.json")
    if config.checkpoint and not Path(config.checkpoint).exists():
        raise ConfigError(f"no checkpoint at {config.checkpoint}: give a run directory or a step_*.pt file")
    from lightclip.evaluation.sources import check_names  # imports torch: after the torch-free checks

    check_names(config.eval.datasets)
    return config


def run(args: argparse.Namespace) -> int:
    config = command_config(args)
    logging.getLogger("lightclip.evaluation.runner").setLevel(logging.ERROR)  # failures are printed below
    device = pick_device(config.device)
    if config.model:
        from lightclip.interop.openclip_load import evaluate_open_clip  # torch: not for --help

        return report(*evaluate_open_clip(config.model, config.eval, device, config.out))
    return evaluate_checkpoint(config, device)


def evaluate_checkpoint(config: EvalCommand, device) -> int:
    # torch-importing modules, imported when the verb runs: --help and a bad option answer at once
    from lightclip import checkpoint as layout
    from lightclip.evaluation import evaluate_model
    from lightclip.evaluation.runner import fill_from_model

    path = layout.resolve_checkpoint(config.checkpoint)
    model, model_config = layout.load_inference_model(path)
    context = model_config.text.context_length
    tokenizer = layout.load_tokenizer(config.tokenizer or layout.find_tokenizer(path), context)
    settings = fill_from_model(replace(config.eval, context_length=context), model)
    started = time.time()
    results = evaluate_model(model.to(device).eval(), tokenizer, settings, device)
    meta = {
        "checkpoint": str(path),
        "root": settings.root,
        "image_encoder": model_config.image_encoder,
        "image_size": settings.image_size,
        "device": str(device),
        "seconds": round(time.time() - started, 1),
    }
    out = Path(config.out) if config.out else layout.eval_dir(path)
    return report(results, out, meta, f"lightclip-{model_config.image_encoder}", str(path))


def report(results: dict, out: Path, meta: dict, model: str, pretrained: str) -> int:
    """Write results.json, results.md and one CLIP_benchmark-style file per dataset; print the
    table and each failure; exit code 1 when a dataset failed."""
    # torch-importing modules, imported when the verb runs
    from lightclip.evaluation import markdown_table, write_results
    from lightclip.interop.benchmark_results import write_benchmark_files

    json_path, md_path = write_results(results, out, meta)
    write_benchmark_files(results, out, model, pretrained)
    print(markdown_table(results, failures=False))  # each failure once, in full, below
    failed = [name for name, r in results.items() if "error" in r]
    for name in failed:
        print(f"\n{results[name]['error']}", file=sys.stderr)
    print(f"results: {json_path} and {md_path}")
    return 1 if failed else 0
