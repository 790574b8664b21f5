"""The ONNX towers: the image and text encoders as one-input modules, their export (torch's dynamo
exporter, falling back to TorchScript) and the onnxruntime parity check against PyTorch.

The file and input/output names of each tower are the export directory's (:mod:`lightclip.export`).
``onnx`` and ``onnxruntime`` are the optional ``export`` extra: they are imported where they are used,
so that the PyTorch backend of :func:`lightclip.load` works without them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from lightclip.export_error import ExportError
from lightclip.models import CLIP, ModelConfig
from pipeline.base.tokenizer import EOS_ID, PAD_ID, SOS_ID

log = logging.getLogger(__name__)

Exporter = Literal["auto", "dynamo", "torchscript"]


@dataclass
class Tower:
    """One ONNX tower: the module to trace, its I/O names and a random-input maker."""

    name: str
    file: str
    module: nn.Module
    input_name: str
    output_name: str
    make_input: Callable[[int, torch.Generator], torch.Tensor]


class ImageTower(nn.Module):
    """``images (B, 3, S, S) -> image_embeds (B, D)``, L2-normalised."""

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)  # (B, D), normalised


class TextTower(nn.Module):
    """``tokens (B, L) -> text_embeds (B, D)``, L2-normalised."""

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
    import onnx  # the optional export extra
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


def export_tower(tower: Tower, path: Path, exporter: Exporter, opset: int, seed: int) -> str:
    """Write one tower to ``path``; return the name of the exporter that succeeded
    (``exporter="auto"``: dynamo, then TorchScript)."""
    names = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    example = tower.make_input(2, torch.Generator().manual_seed(seed))
    errors = []
    for name in names:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                EXPORTERS[name](tower, example, path, opset)
            tower.module.eval()  # exporters restore the wrapper's mode recursively
            return name
        except Exception as err:  # noqa: BLE001 - any exporter failure means "try the next one"
            log.warning("%s exporter failed on the %s tower: %s", name, tower.name, err)
            errors.append(f"{name}: {type(err).__name__}: {str(err)[:500]}")
            path.unlink(missing_ok=True)
    raise ExportError(f"could not export the {tower.name} tower to ONNX:\n  " + "\n  ".join(errors))


def ort_session(path: Path, threads: int = 0):
    """An onnxruntime CPU session (``threads=0``: onnxruntime's default)."""
    import onnxruntime as ort  # the optional export extra

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


def check_parity(tower: Tower, path: Path, tolerance: float, batch: int, seed: int) -> float:
    """Max |onnxruntime - PyTorch| on ``batch`` random inputs (generator seeded with ``seed``);
    raises :class:`ExportError` above ``tolerance``."""
    inputs = tower.make_input(batch, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = tower.module(inputs).numpy()
    got = run_session(ort_session(path), inputs.numpy())
    if got.shape != expected.shape:
        raise ExportError(f"{path.name}: onnxruntime output shape {got.shape} != PyTorch {expected.shape}")
    diff = float(np.abs(got - expected).max())
    if not diff <= tolerance:  # also catches NaN
        raise ExportError(
            f"{path.name}: onnxruntime differs from PyTorch by {diff:.3g} on the normalised "
            f"{tower.name} embeddings (tolerance {tolerance:g}); try --exporter torchscript "
            "or another --opset"
        )
    return diff
