"""Image-text retrieval: embed every image and all of its captions, then recall@k both ways."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader

from lightclip.evaluation.encode import encode_images, encode_texts
from lightclip.evaluation.metrics import retrieval_metrics
from lightclip.evaluation.retrieval_data import RetrievalSet
from lightclip.evaluation.samples import good_batches
from pipeline.base.progress import progress_bar
from pipeline.base.tokenizer import CaptionTokenizer


def collate_pairs(batch: list[tuple[torch.Tensor, list[str]]]) -> tuple[torch.Tensor, list[list[str]]]:
    """Stack the images, keep each image's caption list."""
    images, captions = zip(*batch)
    return torch.stack(images), [list(c) for c in captions]


def run_retrieval(
    model,
    tokenizer: CaptionTokenizer,
    data: RetrievalSet,
    loader: DataLoader,
    device: torch.device,
    amp: bool = True,
    progress: bool = True,
    ks: tuple[int, ...] = (1, 5, 10),
    max_bad: int = 100,
) -> dict[str, float]:
    """Recall@k for caption->image and image->caption, plus num_images and num_texts."""
    image_embeds, text_embeds, text_to_image = [], [], []
    total = math.ceil(data.size / loader.batch_size) if data.size and loader.batch_size else None
    batches = good_batches(loader, data.name, max_bad)
    for images, captions in progress_bar(batches, desc=data.name, total=total, disable=not progress, leave=False):
        keep = [i for i, group in enumerate(captions) if group]  # an image needs a caption
        images, captions = images[keep], [captions[i] for i in keep]
        if not keep:
            continue
        first = sum(len(e) for e in image_embeds)
        image_embeds.append(encode_images(model, images, device, amp))
        texts = [c for group in captions for c in group]
        text_embeds.append(encode_texts(model, tokenizer, texts, device, amp, max(len(texts), 1)))
        text_to_image.extend(first + i for i, group in enumerate(captions) for _ in group)
    if not image_embeds:
        raise ValueError(f"{data.name}: the dataset yielded no images")
    images_t, texts_t = torch.cat(image_embeds), torch.cat(text_embeds)
    out = retrieval_metrics(images_t, texts_t, torch.tensor(text_to_image), ks)
    out.update(num_images=float(len(images_t)), num_texts=float(len(texts_t)))
    return out
