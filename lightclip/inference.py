"""Load an export directory (``python -m lightclip export``) and run it: ``lightclip.load``.

>>> model = load("exports/swin_nano")                 # PyTorch, weights from model.safetensors
>>> model = load("exports/swin_nano", backend="onnx")  # onnxruntime, the two .onnx towers
>>> model = load("runs/swin_nano")                    # PyTorch, a run's latest checkpoint
>>> probs = model.classify(["cat.jpg"], ["a cat", "a dog"])  # (1, 2)

Both backends share the tokenizer (``tokenizer.json``) and the eval transform, so they see the
same inputs. Nothing is unpickled: weights come from safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file

from lightclip.checkpoint import (
    CheckpointError,
    find_tokenizer,
    load_inference_model,
    load_weights,
    resolve_checkpoint,
)
from lightclip.export import (
    CONFIG_FILE,
    FORMAT_VERSION,
    IMAGE_ONNX,
    TEXT_ONNX,
    WEIGHTS_FILE,
    ExportError,
)
from lightclip.export_onnx import ort_session, run_session
from lightclip.models import CLIP, ModelConfig
from pipeline.base.augment_image import eval_transform
from pipeline.base.configs import ConfigError, from_dict
from pipeline.base.errors import UserError
from pipeline.base.tokenizer import PAD_ID, TOKENIZER_FILE, CaptionTokenizer

Backend = Literal["torch", "onnx"]
ImageInput = torch.Tensor | Image.Image | str | Path | Sequence[Image.Image | str | Path]
TextInput = str | Sequence[str] | np.ndarray | torch.Tensor
DEFAULT_PROMPT = "a photo of a {label}."


class LoadError(UserError, ValueError):
    """A model file that is missing, damaged or of another architecture."""


def read_export_config(directory: Path) -> tuple[ModelConfig, float]:
    """The model config and the (capped, exp'd) logit scale stored in ``config.json``."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise LoadError(
            f"{path} not found: is {directory} an export directory "
            "(`python -m lightclip export --checkpoint C --out DIR`)?"
        )
    try:
        meta = json.loads(path.read_text())
        version = meta["format_version"]
        if version != FORMAT_VERSION:
            raise LoadError(f"{path}: format_version {version}, this lightclip reads {FORMAT_VERSION}")
        return from_dict(ModelConfig, meta["model"], "model"), float(meta["logit_scale"])
    except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as err:
        raise LoadError(f"{path}: not a valid export config ({type(err).__name__}: {err})") from err


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file; a missing or damaged one raises :class:`LoadError`."""
    if not path.is_file():
        raise LoadError(f"{path} not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise LoadError(f"{path}: damaged or unreadable safetensors file ({err}); export it again") from err


class _TorchTowers:
    def __init__(self, model: CLIP, threads: int | None):
        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()

    @classmethod
    def from_export(cls, directory: Path, config: ModelConfig, threads: int | None) -> _TorchTowers:
        model = CLIP(config)
        path = directory / WEIGHTS_FILE
        try:
            load_weights(model, read_weights(path), str(path))
        except CheckpointError as err:
            raise LoadError(str(err)) from err
        return cls(model, threads)

    @torch.inference_mode()
    def image(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)

    @torch.inference_mode()
    def text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)


class _OnnxTowers:
    def __init__(self, directory: Path, config: ModelConfig, threads: int | None):
        for name in (IMAGE_ONNX, TEXT_ONNX):
            if not (directory / name).is_file():
                raise LoadError(f"{directory / name} not found: export without --no-onnx")
        try:
            self.image_session = ort_session(directory / IMAGE_ONNX, threads or 0)
            self.text_session = ort_session(directory / TEXT_ONNX, threads or 0)
        except ExportError as err:
            raise LoadError(str(err)) from err

    def image(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run_session(self.image_session, images.numpy().astype(np.float32)))

    def text(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run_session(self.text_session, tokens.numpy().astype(np.int64)))


BACKENDS = {"torch": _TorchTowers.from_export, "onnx": _OnnxTowers}


class LoadedCLIP:
    """A model ready for inference; embeddings are L2-normalised (N, D) tensors. Built by
    :func:`load` from an export directory or a training checkpoint (``directory``: the source)."""

    def __init__(
        self,
        directory: Path,
        config: ModelConfig,
        logit_scale: float,
        tokenizer: CaptionTokenizer,
        towers: _TorchTowers | _OnnxTowers,
        backend: Backend = "torch",
        batch_size: int = 64,
    ):
        self.directory = directory
        self.backend = backend
        self.config, self.logit_scale = config, logit_scale
        self.tokenizer = tokenizer
        self.transform = eval_transform(config.image_size)
        self.batch_size = batch_size
        self._towers = towers

    def preprocess(self, images: ImageInput) -> torch.Tensor:
        """(N, 3, S, S) model input from PIL images or file paths (tensors pass through)."""
        if isinstance(images, torch.Tensor):
            return images[None] if images.dim() == 3 else images
        if isinstance(images, Image.Image | str | Path):
            images = [images]
        return torch.stack([self.transform(_open_image(image)) for image in images])

    def tokenize(self, texts: TextInput) -> torch.Tensor:
        """(N, context_length) int64 ids; strings are tokenized, id arrays padded to the context."""
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(texts, np.ndarray | torch.Tensor):
            ids = torch.as_tensor(texts, dtype=torch.int64)
            ids = ids[None] if ids.dim() == 1 else ids
            return _pad_to(ids, self.config.text.context_length)
        return torch.from_numpy(self.tokenizer.encode(list(texts)))

    def encode_image(self, images: ImageInput) -> torch.Tensor:
        return self._batched(self._towers.image, self.preprocess(images).float())

    def encode_text(self, texts: TextInput) -> torch.Tensor:
        return self._batched(self._towers.text, self.tokenize(texts))

    def classify(self, images: ImageInput, labels: Sequence[str], prompt: str = DEFAULT_PROMPT) -> torch.Tensor:
        """(N images, K labels) probabilities: softmax of scaled cosine similarity between each
        image and ``prompt.format(label=...)`` (``prompt="{label}"`` uses the raw labels)."""
        text = self.encode_text([prompt.format(label=label) for label in labels])  # (K, D)
        image = self.encode_image(images)  # (N, D)
        return (self.logit_scale * image @ text.T).softmax(dim=-1)

    def _batched(self, tower, inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([tower(chunk) for chunk in inputs.split(self.batch_size)])

    def __repr__(self) -> str:
        return (
            f"LoadedCLIP({str(self.directory)!r}, backend={self.backend!r}, "
            f"image_encoder={self.config.image_encoder!r}, image_size={self.config.image_size})"
        )


def _open_image(image: Image.Image | str | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    try:
        with Image.open(image) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError) as err:
        raise LoadError(f"{image}: cannot read the image ({err})") from err


def _pad_to(ids: torch.Tensor, length: int) -> torch.Tensor:
    if ids.shape[1] > length:
        raise ValueError(f"token ids of length {ids.shape[1]} exceed the context length {length}")
    return torch.nn.functional.pad(ids, (0, length - ids.shape[1]), value=PAD_ID)


def load_export(directory: Path, backend: Backend = "torch", threads: int | None = None) -> LoadedCLIP:
    """An export directory with PyTorch (``model.safetensors``) or onnxruntime (the .onnx towers)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {sorted(BACKENDS)}")
    config, logit_scale = read_export_config(directory)
    tokenizer = CaptionTokenizer.from_file(directory / TOKENIZER_FILE, config.text.context_length)
    towers = BACKENDS[backend](directory, config, threads)
    return LoadedCLIP(directory, config, logit_scale, tokenizer, towers, backend)


def load_training_checkpoint(path: Path, threads: int | None = None) -> LoadedCLIP:
    """The inference model of a training checkpoint (PyTorch only) with the run's tokenizer."""
    model, config = load_inference_model(path)
    tokenizer = CaptionTokenizer.from_file(find_tokenizer(path), config.text.context_length)
    return LoadedCLIP(path, config, float(model.scale().detach()), tokenizer, _TorchTowers(model, threads))


def load(directory: str | Path, backend: Backend = "torch", threads: int | None = None) -> LoadedCLIP:
    """Load for inference with PyTorch (``"torch"``) or onnxruntime (``"onnx"``); ``threads`` sets
    the CPU threads of that backend. ``directory``: an export directory, or (PyTorch only) a
    training run directory (its latest checkpoint) or checkpoint file."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        try:
            checkpoint = resolve_checkpoint(directory)
        except CheckpointError:
            checkpoint = None  # not a training output either: the export errors below say what is missing
        if checkpoint is not None and backend == "onnx":
            raise LoadError(
                f"{directory} is a training checkpoint: the onnx backend reads an export "
                "directory (`python -m lightclip export`)"
            )
        if checkpoint is not None:
            return load_training_checkpoint(checkpoint, threads)
    if not directory.is_dir():
        raise LoadError(f"{directory} is not a directory; `python -m lightclip export` writes one")
    return load_export(directory, backend, threads)
