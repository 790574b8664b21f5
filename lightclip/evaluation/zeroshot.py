"""Zero-shot classification: a class-embedding classifier from prompt templates, then ranks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lightclip.evaluation.classification_data import ClassificationSet
from lightclip.evaluation.encode import encode_images, encode_texts
from lightclip.evaluation.metrics import class_ranks, classification_from_ranks
from lightclip.evaluation.prompts import fill_template
from lightclip.evaluation.samples import good_batches
from pipeline.base.progress import progress_bar
from pipeline.base.tokenizer import CaptionTokenizer


def zero_shot_classifier(
    model,
    tokenizer: CaptionTokenizer,
    classnames: list[str],
    templates: list[str],
    device: torch.device,
    amp: bool = True,
    batch_size: int = 256,
) -> torch.Tensor:
    """(C, D): per class, the mean of its normalised template embeddings, renormalised."""
    texts = [fill_template(t, c) for c in classnames for t in templates]
    embeds = encode_texts(model, tokenizer, texts, device, amp, batch_size)
    per_class = embeds.view(len(classnames), len(templates), -1).mean(dim=1)
    return F.normalize(per_class, dim=-1)


def run_classification(
    model,
    tokenizer: CaptionTokenizer,
    data: ClassificationSet,
    loader: DataLoader,
    device: torch.device,
    amp: bool = True,
    progress: bool = True,
    max_bad: int = 100,
) -> dict[str, float]:
    """acc1, acc5, mean_per_class_recall, num_samples, num_classes of ``data``."""
    classifier = zero_shot_classifier(model, tokenizer, data.classnames, data.templates, device, amp)
    ranks, targets = [], []
    total = math.ceil(data.size / loader.batch_size) if data.size and loader.batch_size else None
    batches = good_batches(loader, data.name, max_bad)
    for images, labels in progress_bar(batches, desc=data.name, total=total, disable=not progress, leave=False):
        logits = encode_images(model, images, device, amp) @ classifier.T  # (B, C)
        labels = torch.as_tensor(labels, device=device)
        ranks.append(class_ranks(logits, labels).cpu())
        targets.append(labels.cpu())
    if not ranks:
        raise ValueError(f"{data.name}: the dataset yielded no images")
    ranks_t, targets_t = torch.cat(ranks), torch.cat(targets)
    num_classes = len(data.classnames)
    if int(targets_t.max()) >= num_classes or int(targets_t.min()) < 0:
        raise ValueError(f"{data.name}: labels outside 0..{num_classes - 1}; check the class names file")
    out = classification_from_ranks(ranks_t, targets_t, num_classes)
    out.update(num_samples=float(len(targets_t)), num_classes=float(num_classes))
    return out
