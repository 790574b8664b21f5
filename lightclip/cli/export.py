"""`python -m lightclip export [--recipe R] --checkpoint C --out DIR [--format open_clip] [key=value ...]`:
the inference model as safetensors + ONNX, or in open_clip's layout.

Keys: ``checkpoint`` (a run directory: its latest), ``out``, ``tokenizer`` (default: the run's)
and ``export.*`` (:class:`lightclip.export.ExportConfig`); flags are shorthands for them.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lightclip.cli.options import add_recipe_arguments, flag_values, load_config
from pipeline.base.configs import ConfigError, from_dict

if TYPE_CHECKING:
    from lightclip.export import ExportConfig

FLAGS = {
    "checkpoint": "checkpoint",
    "out": "out",
    "tokenizer": "tokenizer",
    "exporter": "export.exporter",
    "opset": "export.opset",
    "tolerance": "export.tolerance",
    "onnx": "export.onnx",
    "overwrite": "export.overwrite",
    "format": "export.format",
}


@dataclass
class ExportCommand:
    """What `lightclip export` reads (``checkpoint``, ``tokenizer``), writes (``out``) and how
    (``export``: the keys of :class:`lightclip.export.ExportConfig`, read by :func:`export_config`
    so that parsing does not import torch)."""

    checkpoint: str = ""
    out: str = ""
    tokenizer: str = ""
    export: dict[str, Any] = field(default_factory=dict)


def configure(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(parser, "export.opset=17 export.tolerance=1e-3")
    parser.add_argument(
        "--checkpoint", help="training checkpoint step_*.pt, or a run directory (its latest checkpoint)"
    )
    parser.add_argument("--out", help="export directory to create")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one found beside the checkpoint)")
    parser.add_argument(
        "--exporter",
        choices=["auto", "dynamo", "torchscript"],
        help="ONNX exporter; auto tries dynamo, then TorchScript (default: auto)",
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: export.opset of ExportConfig)")
    parser.add_argument(
        "--tolerance",
        type=float,
        help="max |onnxruntime - PyTorch| on normalised embeddings (default: export.tolerance)",
    )
    parser.add_argument(
        "--no-onnx", dest="onnx", action="store_const", const=False, help="write safetensors, config and tokenizer only"
    )
    parser.add_argument("--overwrite", action="store_const", const=True, help="replace an existing --out directory")
    parser.add_argument(
        "--format",
        choices=["lightclip", "open_clip"],
        help="lightclip: safetensors + ONNX (default); open_clip: config and weights open_clip loads "
        "(docs/interop.md; name it with export.open_clip_name=NAME)",
    )


def command_config(args: argparse.Namespace) -> ExportCommand:
    config = load_config(ExportCommand, args.recipe, args.overrides, flag_values(args, FLAGS))
    missing = [f"--{key}" for key in ("checkpoint", "out") if not getattr(config, key)]
    if missing:
        raise ConfigError(f"give {' and '.join(missing)} (a run dir or step_*.pt, and the export directory to create)")
    return config


def export_config(config: ExportCommand) -> ExportConfig:
    """The ``export.*`` keys as :class:`ExportConfig` (unknown keys and bad values: ConfigError)."""
    from lightclip.export import ExportConfig  # imports torch: not while parsing

    if not isinstance(config.export, dict):
        raise ConfigError(f"export: expected a mapping of export.* keys, got {config.export!r}")
    return from_dict(ExportConfig, config.export, "export")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("lightclip").setLevel(logging.INFO)
    config = command_config(args)  # checked before torch is imported
    settings = export_config(config)
    # torch-importing modules, imported once the settings are checked
    from lightclip import checkpoint as layout
    from lightclip.export import export_model

    path = layout.resolve_checkpoint(config.checkpoint)
    model, model_config = layout.load_inference_model(path)
    tokenizer = config.tokenizer or layout.find_tokenizer(path)
    out = export_model(model, model_config, tokenizer, config.out, settings)
    print(f"exported {model_config.image_encoder} to {out}")
    return 0
