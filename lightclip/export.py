"""Export the inference model: safetensors weights, config, tokenizer and ONNX towers.

An export directory holds (the only place that knows these names)::

    model.safetensors     CLIP weights only (no fusion, MLM head or token projections)
    config.json           {"format_version", "model": ModelConfig as a dict, "logit_scale", "onnx"}
    tokenizer.json        the caption tokenizer
    image_encoder.onnx    images (B, 3, S, S) float32 -> image_embeds (B, D), L2-normalised
    text_encoder.onnx     tokens (B, L) int64 -> text_embeds (B, D), L2-normalised

``ExportConfig.format="open_clip"`` writes open_clip's layout instead
(:mod:`lightclip.interop.openclip_format`).

The ONNX towers are checked against PyTorch with onnxruntime on random inputs before the
directory appears: everything is written to a temporary sibling and renamed at the end, so a
failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from lightclip.checkpoint import umask_mode
from lightclip.export_error import ExportError
from lightclip.interop.openclip_format import write_open_clip
from lightclip.models import CLIP, ModelConfig
from lightclip.task import LightCLIP
from pipeline.base.configs import to_dict
from pipeline.base.tokenizer import EOS_ID, PAD_ID, SOS_ID, TOKENIZER_FILE, CaptionTokenizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
IMAGE_ONNX = "image_encoder.onnx"
TEXT_ONNX = "text_encoder.onnx"
IMAGE_INPUT, IMAGE_OUTPUT = "images", "image_embeds"
TEXT_INPUT, TEXT_OUTPUT = "tokens", "text_embeds"
TRAIN_ONLY_PREFIXES = ("fusion.", "mlm_head.", "image_token_projection.", "text_token_projection.")

Exporter = Literal["auto", "dynamo", "torchscript"]
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


@dataclass
class Tower:
    """One ONNX tower: the module to trace, its I/O names and a random-input maker."""

    name: str
    file: str
    module: nn.Module
    input_name: str
    output_name: str
    make_input: Callable[[int, torch.Generator], torch.Tensor]
    meta: dict = field(default_factory=dict)


class _ImageTower(nn.Module):
    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)  # (B, D), normalised


class _TextTower(nn.Module):
    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)  # (B, D), normalised


def random_images(config: ModelConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, S, S) standard-normal images (the scale of normalised pixels)."""
    size = config.image_size
    return torch.randn(batch, 3, size, size, generator=generator)


def random_tokens(config: ModelConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(B, L) captions of random lengths laid out as the tokenizer does: [SOS] ids [EOS] [PAD]..."""
    text = config.text
    length = text.context_length
    tokens = torch.full((batch, length), PAD_ID, dtype=torch.int64)
    for row in range(batch):
        n = int(torch.randint(1, length - 1, (1,), generator=generator))
        tokens[row, 0] = SOS_ID
        tokens[row, 1 : n + 1] = torch.randint(4, text.vocab_size, (n,), generator=generator)
        tokens[row, n + 1] = EOS_ID
    return tokens


def inference_state_dict(model: CLIP) -> dict[str, torch.Tensor]:
    """The tensors written to ``model.safetensors`` (contiguous CPU copies)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def towers(model: CLIP, config: ModelConfig) -> list[Tower]:
    return [
        Tower(
            "image",
            IMAGE_ONNX,
            _ImageTower(model).eval(),
            IMAGE_INPUT,
            IMAGE_OUTPUT,
            lambda b, g: random_images(config, b, g),
        ),
        Tower(
            "text",
            TEXT_ONNX,
            _TextTower(model).eval(),
            TEXT_INPUT,
            TEXT_OUTPUT,
            lambda b, g: random_tokens(config, b, g),
        ),
    ]


def _export_dynamo(tower: Tower, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        tower.module,
        (example,),
        input_names=[tower.input_name],
        output_names=[tower.output_name],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        opset_version=opset,
        verbose=False,
    )
    program.save(str(path), external_data=False)


def _export_torchscript(tower: Tower, example: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        tower.module,
        (example,),
        str(path),
        input_names=[tower.input_name],
        output_names=[tower.output_name],
        opset_version=opset,
        dynamo=False,
        dynamic_axes={tower.input_name: {0: "batch"}, tower.output_name: {0: "batch"}},
    )
    _fix_bool_eyelike(path)


def _fix_bool_eyelike(path: Path) -> None:
    """onnxruntime has no boolean ``EyeLike`` kernel (the TorchScript exporter emits one for
    ``torch.eye(..., dtype=bool)`` in the text padding mask): compute it in float and cast."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    nodes, fixed = list(proto.graph.node), []
    for node in nodes:
        if node.op_type != "EyeLike" or types.get(node.output[0]) != TensorProto.BOOL:
            fixed.append(node)
            continue
        for attribute in [a for a in node.attribute if a.name == "dtype"]:
            node.attribute.remove(attribute)
        source, node.input[0] = node.input[0], node.input[0] + "_float"
        target, node.output[0] = node.output[0], node.output[0] + "_float"
        fixed += [
            helper.make_node(
                "Cast", [source], [node.input[0]], to=TensorProto.FLOAT, name=node.name + "_input_to_float"
            ),
            node,
            helper.make_node("Cast", [node.output[0]], [target], to=TensorProto.BOOL, name=node.name + "_to_bool"),
        ]
    if len(fixed) != len(nodes):
        del proto.graph.node[:]
        proto.graph.node.extend(fixed)
        onnx.save(proto, str(path))


EXPORTERS = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def export_tower(tower: Tower, path: Path, config: ExportConfig) -> str:
    """Write one tower to ``path``; return the name of the exporter that succeeded."""
    names = ["dynamo", "torchscript"] if config.exporter == "auto" else [config.exporter]
    example = tower.make_input(2, torch.Generator().manual_seed(config.seed))
    errors = []
    for name in names:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                EXPORTERS[name](tower, example, path, config.opset)
            tower.module.eval()  # exporters restore the wrapper's mode recursively
            return name
        except Exception as err:  # noqa: BLE001 - any exporter failure means "try the next one"
            log.warning("%s exporter failed on the %s tower: %s", name, tower.name, err)
            errors.append(f"{name}: {type(err).__name__}: {str(err)[:500]}")
            path.unlink(missing_ok=True)
    raise ExportError(f"could not export the {tower.name} tower to ONNX:\n  " + "\n  ".join(errors))


def ort_session(path: Path, threads: int = 0):
    """An onnxruntime CPU session (``threads=0``: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ExportError(f"{path}: onnxruntime cannot load it ({err})") from err


def run_session(session, inputs: np.ndarray) -> np.ndarray:
    """Run a one-input, one-output tower session."""
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def check_parity(tower: Tower, path: Path, config: ExportConfig) -> float:
    """Max |onnxruntime - PyTorch| on random inputs; raises :class:`ExportError` above tolerance."""
    inputs = tower.make_input(config.parity_batch, torch.Generator().manual_seed(config.seed + 1))
    with torch.no_grad():
        expected = tower.module(inputs).numpy()
    got = run_session(ort_session(path), inputs.numpy())
    if got.shape != expected.shape:
        raise ExportError(f"{path.name}: onnxruntime output shape {got.shape} != PyTorch {expected.shape}")
    diff = float(np.abs(got - expected).max())
    if not diff <= config.tolerance:  # also catches NaN
        raise ExportError(
            f"{path.name}: onnxruntime differs from PyTorch by {diff:.3g} on the normalised "
            f"{tower.name} embeddings (tolerance {config.tolerance:g}); try --exporter torchscript "
            "or another --opset"
        )
    return diff


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
    exporter = export_tower(tower, path, export_config)
    diff = check_parity(tower, path, export_config)
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
