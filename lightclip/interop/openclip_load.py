"""open_clip models for inference and for ``python -m lightclip eval --model openclip:ARCH[:PATH]``.

``ARCH`` is an open_clip model name (``RN50``, ``ViT-B-32``, a name registered with
``open_clip.add_model_config``) or ``local-dir:DIR``; ``PATH`` its weights (none: random
initialisation). A directory written by ``lightclip export --format open_clip`` loads through
:func:`load_open_clip`, which also applies what open_clip's JSON config cannot say.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn

from lightclip.evalconfig import EvalConfig
from lightclip.evaluation import evaluate_model
from lightclip.interop.openclip_format import OPEN_CLIP_CONFIG, OpenClipSettings, read_settings
from lightclip.interop.timm_trunks import register_trunk
from pipeline.base.configs import ConfigError

PREFIX = "openclip:"
LOCAL_DIR = "local-dir:"


@dataclass(frozen=True)
class OpenClipSpec:
    """``openclip:ARCH[:PATH]`` parsed."""

    arch: str
    pretrained: str = ""

    @property
    def label(self) -> str:
        """The model's name in result files."""
        return f"openclip:{self.arch}" + (f":{Path(self.pretrained).name}" if self.pretrained else "")


def parse_spec(spec: str) -> OpenClipSpec:
    """``openclip:ARCH[:PATH]``; ``ARCH`` may be ``local-dir:DIR`` (its weights are in DIR)."""
    if not spec.startswith(PREFIX) or not spec[len(PREFIX) :].strip():
        raise ConfigError(f"--model {spec!r}: give openclip:ARCH or openclip:ARCH:PATH (e.g. openclip:RN50)")
    rest = spec[len(PREFIX) :]
    if rest.startswith(LOCAL_DIR):
        return OpenClipSpec(rest)
    arch, _, pretrained = rest.partition(":")
    if pretrained and not Path(pretrained).is_file():
        raise ConfigError(f"--model {spec}: weights {pretrained} are not a file")
    return OpenClipSpec(arch, pretrained)


class OpenClipTokenizer:
    """open_clip's tokenizer behind the ``encode(texts) -> (N, L) int64`` of this project's."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer, self.context_length = tokenizer, context_length

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.tokenizer(list(texts)).numpy().astype(np.int64)


@dataclass
class OpenClipModel:
    """A loaded open_clip model with its eval preprocessing and tokenizer."""

    model: nn.Module
    preprocess: object  # PIL image -> (3, S, S) tensor
    tokenizer: OpenClipTokenizer
    image_size: int


def _open_clip():
    try:
        import open_clip
    except ImportError as err:
        raise ConfigError("open_clip is not installed: pip install -e '.[interop]'") from err
    return open_clip


def apply_settings(model: nn.Module, settings: OpenClipSettings) -> nn.Module:
    """What the JSON config of an export cannot carry: the text padding mask."""
    if settings.text_padding_mask:
        model.text.use_pad_mask = True  # open_clip's TextTransformer has it; CLIPTextCfg does not pass it
    return model


def _export_settings(arch: str) -> OpenClipSettings | None:
    """The settings of a ``local-dir:`` lightclip export (None: any other model)."""
    if not arch.startswith(LOCAL_DIR) or not (Path(arch[len(LOCAL_DIR) :]) / OPEN_CLIP_CONFIG).is_file():
        return None
    directory = Path(arch[len(LOCAL_DIR) :])
    settings = read_settings(directory)[1]
    if settings.register_trunk:
        register_trunk(settings.timm_model_name)
    return settings


def load_open_clip(spec: OpenClipSpec | str | Path, device: str | torch.device = "cpu") -> OpenClipModel:
    """An open_clip model in eval mode. ``spec``: an :class:`OpenClipSpec`, ``openclip:...`` or
    the directory of a ``lightclip export --format open_clip``."""
    if isinstance(spec, Path) or (isinstance(spec, str) and not spec.startswith(PREFIX)):
        spec = OpenClipSpec(f"{LOCAL_DIR}{spec}")
    elif isinstance(spec, str):
        spec = parse_spec(spec)
    open_clip = _open_clip()
    settings = _export_settings(spec.arch)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=spec.pretrained or None)
        tokenizer = open_clip.get_tokenizer(spec.arch)
    except (RuntimeError, ValueError, KeyError, AssertionError, SafetensorError) as err:  # unknown name, other weights
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"open_clip cannot load {spec.label}: {first}") from err
    if settings is not None:
        apply_settings(model, settings)
    size = model.visual.image_size
    context = getattr(model, "context_length", None) or tokenizer.context_length
    return OpenClipModel(
        model.to(device).eval(),
        preprocess,
        OpenClipTokenizer(tokenizer, context),
        int(size[0] if isinstance(size, tuple | list) else size),
    )


def default_out(spec: OpenClipSpec) -> Path:
    """``runs/eval/<label>``, the label's unsafe characters as ``_``."""
    return Path("runs") / "eval" / re.sub(r"[^A-Za-z0-9._-]+", "_", spec.label).strip("_")


def evaluate_open_clip(
    spec_text: str, config: EvalConfig, device: torch.device, out: str = ""
) -> tuple[dict, Path, dict, str, str]:
    """``lightclip eval --model openclip:...``: the metrics of every set in ``config`` with
    open_clip's own preprocessing and tokenizer; returns (results, out dir, meta, model name,
    pretrained) for the eval verb's report."""
    spec = parse_spec(spec_text)
    loaded = load_open_clip(spec, device)
    settings = replace(config, image_size=loaded.image_size, context_length=loaded.tokenizer.context_length)
    started = time.time()
    results = evaluate_model(loaded.model, loaded.tokenizer, settings, device, transform=loaded.preprocess)
    meta = {
        "model": spec_text,
        "root": settings.root,
        "image_size": loaded.image_size,
        "device": str(device),
        "seconds": round(time.time() - started, 1),
    }
    return results, Path(out) if out else default_out(spec), meta, spec.arch, spec.pretrained or "random-init"
