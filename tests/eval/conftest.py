"""Tiny model and tokenizer for the evaluation tests."""

from __future__ import annotations

import pytest

from lightclip.models import CLIP, ModelConfig, TextConfig
from pipeline.base.tokenizer import CaptionTokenizer, train_tokenizer

CORPUS = [
    "a photo of a red square",
    "a photo of a green square",
    "a photo of the blue thing",
    "caption of image",
    "airplane automobile bird cat deer dog frog horse ship truck",
] * 4


@pytest.fixture(scope="session")
def tokenizer() -> CaptionTokenizer:
    return CaptionTokenizer(train_tokenizer(CORPUS, vocab_size=200), context_length=16)


def tiny_model(vocab_size: int) -> CLIP:
    text = TextConfig(vocab_size=vocab_size, width=32, heads=2, layers=4, stages=4, context_length=16)
    return CLIP(ModelConfig(image_encoder="resnet18", image_size=32, embed_dim=32, text=text))


@pytest.fixture(scope="session")
def model(tokenizer: CaptionTokenizer) -> CLIP:
    return tiny_model(tokenizer.vocab_size).eval()
