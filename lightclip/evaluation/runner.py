"""``evaluate_model``: every requested dataset, one result entry each, failures recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, default_collate

from lightclip.evalconfig import EvalConfig
from lightclip.evaluation.classification_data import ClassificationSet
from lightclip.evaluation.errors import DatasetUnavailable
from lightclip.evaluation.retrieval import collate_pairs, run_retrieval
from lightclip.evaluation.samples import Collate, SkipBad
from lightclip.evaluation.sources import UnknownDataset, open_dataset
from lightclip.evaluation.zeroshot import run_classification
from pipeline.base.augment_image import eval_transform
from pipeline.base.configs import ConfigError
from pipeline.base.tokenizer import CaptionTokenizer

log = logging.getLogger(__name__)
Transform = Callable[[Image.Image], torch.Tensor]


def _inference_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module with ``encode_image``/``encode_text`` (a training ``LightCLIP`` holds it as ``.clip``)."""
    if hasattr(model, "encode_image"):
        return model
    inner = getattr(model, "clip", None) or getattr(getattr(model, "module", None), "clip", None)
    if inner is None:
        raise TypeError(f"{type(model).__name__} has no encode_image/encode_text")
    return inner


def model_image_size(model: torch.nn.Module) -> int | None:
    """The input side a model says it takes: ``config.image_size`` (LightCLIP), or
    ``visual.image_size`` (open_clip, an int or a pair); None when it does not say."""
    size = getattr(getattr(model, "config", None), "image_size", None)
    if size is None:
        size = getattr(getattr(model, "visual", None), "image_size", None)
    if isinstance(size, tuple | list) and size:
        size = size[0]
    return size if isinstance(size, int) and size > 0 else None


def fill_from_model(config: EvalConfig, model: torch.nn.Module) -> EvalConfig:
    """``image_size`` / ``context_length`` left at 0 take the model's own: a model trained at
    64 px is evaluated at 64 px, never silently at 224; a model that does not say its size
    needs ``eval.image_size``."""
    model_config = getattr(model, "config", None)
    image_size = config.image_size or model_image_size(model)
    if not image_size:
        raise ConfigError(
            f"{type(model).__name__} does not say its input size: set eval.image_size (--image-size), e.g. 224"
        )
    text_config = getattr(model_config, "text", None)
    context_length = config.context_length or getattr(text_config, "context_length", 77)
    return replace(config, image_size=image_size, context_length=context_length)


def _fit_tokenizer(tokenizer: CaptionTokenizer, model: torch.nn.Module, context_length: int) -> CaptionTokenizer:
    """A tokenizer emitting no more tokens than the model's text tower takes (another model's
    tokenizer, e.g. open_clip's, is its own model's already)."""
    if not isinstance(tokenizer, CaptionTokenizer):
        return tokenizer
    text_config = getattr(getattr(model, "config", None), "text", None)
    length = min(context_length, getattr(text_config, "context_length", context_length))
    if tokenizer.context_length == length:
        return tokenizer
    return CaptionTokenizer(tokenizer.tokenizer, length)


def _loader(data, config: EvalConfig, device: torch.device, retrieval: bool):
    num_classes = 0 if retrieval else len(data.classnames)
    loader = DataLoader(
        data.dataset if isinstance(data.dataset, IterableDataset) else SkipBad(data.dataset, num_classes),
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        collate_fn=Collate(collate_pairs if retrieval else default_collate),
    )
    return loader


def evaluate_dataset(
    model: torch.nn.Module,
    tokenizer: CaptionTokenizer,
    name: str,
    config: EvalConfig,
    device: torch.device,
    transform: Transform | None = None,
) -> dict[str, float]:
    """Metrics of one dataset; raises :class:`DatasetUnavailable` when it is missing. ``transform``:
    the model's own image preprocessing (default: this project's eval transform at ``image_size``)."""
    transform = transform or eval_transform(config.image_size)
    data = open_dataset(name, config.root, transform, config.download)
    if isinstance(data, ClassificationSet):
        loader = _loader(data, config, device, retrieval=False)
        return run_classification(
            model, tokenizer, data, loader, device, config.amp, config.progress, config.max_bad_samples
        )
    loader = _loader(data, config, device, retrieval=True)
    return run_retrieval(
        model, tokenizer, data, loader, device, config.amp, config.progress, config.recall_k, config.max_bad_samples
    )


def evaluate_model(
    model: torch.nn.Module,
    tokenizer: CaptionTokenizer,
    config: EvalConfig,
    device: str | torch.device = "cpu",
    transform: Transform | None = None,
) -> dict[str, dict[str, float]]:
    """Zero-shot classification / retrieval metrics per dataset name, in ``config.datasets``
    order. Classification: acc1, acc5, mean_per_class_recall (fractions), num_samples,
    num_classes; retrieval: image_retrieval_recall@k, text_retrieval_recall@k, num_images,
    num_texts. A dataset that cannot be read gets ``{"error": message}`` and the others still
    run. ``model`` must already be on ``device``; its train/eval mode is restored afterwards.
    Any model with ``encode_image`` / ``encode_text`` works (an open_clip one: pass its
    ``transform`` and a tokenizer with ``encode(texts)``, :mod:`lightclip.interop.openclip_load`)."""
    device = torch.device(device)
    clip = _inference_model(model)
    config = fill_from_model(config, clip)
    tokenizer = _fit_tokenizer(tokenizer, clip, config.context_length)
    was_training = clip.training
    clip.eval()
    results: dict[str, dict[str, float]] = {}
    try:
        for name in config.datasets:
            try:
                results[name] = evaluate_dataset(clip, tokenizer, name, config, device, transform)
            except (DatasetUnavailable, UnknownDataset) as err:
                log.warning("%s", err)
                results[name] = {"error": str(err)}
            except Exception as err:  # noqa: BLE001 - recorded per dataset unless strict
                if config.strict:
                    raise
                log.error("evaluation of %s failed: %s", name, err, exc_info=log.isEnabledFor(logging.DEBUG))
                results[name] = {"error": f"{type(err).__name__}: {err}"}
    finally:
        clip.train(was_training)
    return results
