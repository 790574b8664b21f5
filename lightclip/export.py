"""Export the inference model: safetensors weights, config, tokenizer and ONNX towers.

An export directory holds (the only place that knows these names)::

    model.safetensors     CLIP weights only (no fusion, MLM head or token projections)
    config.json           {"format_version", "model": ModelConfig as a dict, "logit_scale", "onnx"}
    tokenizer.json        the caption tokenizer
    image_encoder.onnx    images (B, 3, S, S) float32 -> image_embeds (B, D), L2-normalised
    text_encoder.onnx     tokens (B, L) int64 -> text_embeds (B, D), L2-normalised

``ExportConfig.format="open_clip"`` writes open_clip's layout instead
(:mod:`lightclip.interop.openclip_format`).

The ONNX towers (:mod:`lightclip.export_onnx`) are checked against PyTorch with onnxruntime on
random inputs before the directory appears: everything is written to a temporary sibling and
renamed at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file

from lightclip.checkpoint import umask_mode
from lightclip.export_error import ExportError
from lightclip.export_onnx import (
    Exporter,
    ImageTower,
    TextTower,
    Tower,
    check_parity,
    export_tower,
    random_images,
    random_tokens,
)
from lightclip.interop.openclip_format import write_open_clip
from lightclip.models import CLIP, ModelConfig
from lightclip.task import LightCLIP
from pipeline.base.configs import to_dict
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
IMAGE_ONNX = "image_encoder.onnx"
TEXT_ONNX = "text_encoder.onnx"
IMAGE_INPUT, IMAGE_OUTPUT = "images", "image_embeds"
TEXT_INPUT, TEXT_OUTPUT = "tokens", "text_embeds"
TRAIN_ONLY_PREFIXES = ("fusion.", "mlm_head.", "image_token_projection.", "text_token_projection.")

Format = Literal["lightclip", "open_clip"]


@dataclass
class ExportConfig:
    """How to export. ``exporter="auto"`` tries torch's dynamo exporter and falls back to the
    TorchScript one for a tower it cannot export. ``tolerance``: largest allowed absolute
    difference between onnxruntime and PyTorch on the normalised embeddings. ``format``:
    ``lightclip`` (safetensors + ONNX, :func:`lightclip.load`) or ``open_clip`` (open_clip's
    config and weights; no ONNX), registered by open_clip as ``open_clip_name`` (default
    ``lightclip-<encoder>-<image size>``)."""

    format: Format = "lightclip"
    open_clip_name: str = ""
    onnx: bool = True
    exporter: Exporter = "auto"
    opset: int = 18
    tolerance: float = 1e-4
    parity_batch: int = 3  # differs from the trace batch (2), so the dynamic batch axis is exercised
    seed: int = 0
    overwrite: bool = False


def inference_state_dict(model: CLIP) -> dict[str, torch.Tensor]:
    """The tensors written to ``model.safetensors`` (contiguous CPU copies)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def towers(model: CLIP, config: ModelConfig) -> list[Tower]:
    """The two ONNX towers of ``model`` with their file and input/output names."""
    return [
        Tower("image", IMAGE_ONNX, ImageTower(model).eval(), IMAGE_INPUT, IMAGE_OUTPUT, partial(random_images, config)),
        Tower("text", TEXT_ONNX, TextTower(model).eval(), TEXT_INPUT, TEXT_OUTPUT, partial(random_tokens, config)),
    ]


def _as_inference_model(model: CLIP | LightCLIP) -> CLIP:
    if isinstance(model, LightCLIP):
        return model.inference()
    if not isinstance(model, CLIP):
        raise TypeError(f"export needs a lightclip CLIP (or LightCLIP) model, got {type(model).__name__}")
    return model.eval()


def _check_tokenizer(tokenizer_path: Path, config: ModelConfig) -> CaptionTokenizer:
    tokenizer = CaptionTokenizer.from_file(tokenizer_path, config.text.context_length)
    if tokenizer.vocab_size > config.text.vocab_size:
        raise ExportError(
            f"tokenizer {tokenizer_path} has {tokenizer.vocab_size} tokens but the model's "
            f"vocabulary is {config.text.vocab_size}: it belongs to another model"
        )
    return tokenizer


def _write_files(
    model: CLIP, config: ModelConfig, tokenizer: CaptionTokenizer, work: Path, export_config: ExportConfig
) -> None:
    meta: dict = {
        "format_version": FORMAT_VERSION,
        "model": to_dict(config),
        "logit_scale": float(model.scale().detach()),
    }
    weights = inference_state_dict(model)
    log.info(
        "%s inference model: %.2fM parameters -> %s",
        config.image_encoder,
        sum(t.numel() for t in weights.values()) / 1e6,
        WEIGHTS_FILE,
    )
    save_file(weights, str(work / WEIGHTS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
    tokenizer.save(work / TOKENIZER_FILE)
    if export_config.onnx:
        meta["onnx"] = {"opset": export_config.opset, "towers": {}}
        for tower in towers(model, config):
            meta["onnx"]["towers"][tower.name] = _onnx_tower(tower, work, export_config)
    (work / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _onnx_tower(tower: Tower, work: Path, export_config: ExportConfig) -> dict:
    """Export one tower and check it; logs before and after (the dynamo exporter takes minutes)."""
    path, started = work / tower.file, time.perf_counter()
    log.info(
        "%s tower -> ONNX (%s exporter%s)...",
        tower.name,
        export_config.exporter,
        "; dynamo can take minutes, --exporter torchscript takes seconds"
        if export_config.exporter != "torchscript"
        else "",
    )
    exporter = export_tower(tower, path, export_config.exporter, export_config.opset, export_config.seed)
    # parity on other inputs (and another batch size) than the trace's
    diff = check_parity(tower, path, export_config.tolerance, export_config.parity_batch, export_config.seed + 1)
    log.info(
        "%s tower: %s exporter, %.1f s, max |onnxruntime - torch| = %.2e",
        tower.name,
        exporter,
        time.perf_counter() - started,
        diff,
    )
    return {
        "file": tower.file,
        "exporter": exporter,
        "max_abs_diff": diff,
        "input": tower.input_name,
        "output": tower.output_name,
    }


def _format_writer(
    export_config: ExportConfig, out_dir: Path
) -> Callable[[CLIP, ModelConfig, CaptionTokenizer, Path], None]:
    """The function that fills the work directory for ``export_config.format``."""
    if export_config.format == "lightclip":
        return lambda model, config, tokenizer, work: _write_files(model, config, tokenizer, work, export_config)
    if export_config.format != "open_clip":
        raise ExportError(f"unknown export format {export_config.format!r}; valid: lightclip, open_clip")
    return lambda model, config, tokenizer, work: write_open_clip(
        model, tokenizer, work, out_dir, export_config.open_clip_name
    )


def _publish(work: Path, out_dir: Path, overwrite: bool) -> None:
    """Rename ``work`` to ``out_dir`` (an existing one is replaced only with ``overwrite``)."""
    if out_dir.exists():
        if not overwrite:
            raise ExportError(f"{out_dir} already exists; pass --overwrite to replace it")
        old = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        work.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(out_dir)


def export_model(
    model: CLIP | LightCLIP,
    config: ModelConfig,
    tokenizer_path: str | Path,
    out_dir: str | Path,
    export_config: ExportConfig | None = None,
) -> Path:
    """Write an export directory for ``model`` (see the module docstring) and return its path.

    A ``LightCLIP`` training model is reduced to its inference ``CLIP`` first. Raises
    :class:`ExportError` when a tower cannot be exported or its ONNX outputs differ from PyTorch;
    then no directory is left behind.
    """
    export_config = export_config or ExportConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and not export_config.overwrite:
        raise ExportError(f"{out_dir} already exists; pass --overwrite to replace it")
    clip = _as_inference_model(model).cpu().float()
    if to_dict(clip.config) != to_dict(config):
        raise ExportError("the model was built from another ModelConfig than the one given")
    tokenizer = _check_tokenizer(Path(tokenizer_path), config)
    write = _format_writer(export_config, out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    os.chmod(work, umask_mode(0o777))  # mkdtemp's 0700 would hide the export from teammates
    try:
        write(clip, config, tokenizer, work)
        for path in work.iterdir():  # safetensors writes 0600
            os.chmod(path, umask_mode())
        _publish(work, out_dir, export_config.overwrite)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir
