"""Tiny models, tokenizer and images for the export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lightclip.models import ModelConfig, TextConfig
from pipeline.base.tokenizer import CaptionTokenizer, train_tokenizer

CONTEXT = 16
VOCAB = 300
CAPTIONS = [
    "a photo of a cat",
    "a photo of a dog",
    "a red car on the road",
    "a bird in the sky",
    "two dogs playing in the park",
    "a blue boat on the lake",
    "a cat sleeping on a sofa",
]


def tiny_config(encoder: str, image_size: int = 64) -> ModelConfig:
    text = TextConfig(vocab_size=VOCAB, context_length=CONTEXT, width=32, heads=2, layers=2, stages=2)
    return ModelConfig(image_encoder=encoder, image_size=image_size, embed_dim=32, text=text)


def write_tokenizer(path: Path) -> Path:
    CaptionTokenizer(train_tokenizer(CAPTIONS * 10, vocab_size=VOCAB), CONTEXT).save(path)
    return path


def write_images(folder: Path, count: int = 3) -> list[Path]:
    """Distinct synthetic images (solid colours with a gradient), of a size other than the model's."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        base = rng.integers(0, 255, size=3)
        ramp = np.linspace(0, 1, 90)[None, :, None]
        pixels = np.clip(base * (0.5 + ramp) + rng.normal(0, 20, (70, 90, 3)), 0, 255).astype("uint8")
        path = folder / f"image_{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths
