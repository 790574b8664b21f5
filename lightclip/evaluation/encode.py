"""Batched, normalised embeddings from any model with ``encode_image`` / ``encode_text``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from pipeline.base.tokenizer import CaptionTokenizer


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA when ``amp``; a no-op elsewhere."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def encode_images(model, images: torch.Tensor, device: torch.device, amp: bool) -> torch.Tensor:
    """(B, D) float32 unit vectors."""
    with autocast(device, amp):
        embeds = model.encode_image(images.to(device, non_blocking=True))
    return F.normalize(embeds.float(), dim=-1)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def encode_texts(
    model, tokenizer: CaptionTokenizer, texts: list[str], device: torch.device, amp: bool, batch_size: int = 256
) -> torch.Tensor:
    """(N, D) float32 unit vectors, ``batch_size`` texts at a time."""
    out = []
    for chunk in _chunks(texts, batch_size):
        tokens = torch.from_numpy(tokenizer.encode(chunk)).to(device)
        with autocast(device, amp):
            embeds = model.encode_text(tokens)
        out.append(F.normalize(embeds.float(), dim=-1))
    return torch.cat(out)
