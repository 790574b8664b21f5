"""Tiny model configurations for spine tests."""

import torch

from lightclip.models import ModelConfig, TextConfig

VOCAB = 300


def tiny_config(encoder: str = "resnet18", image_size: int = 64, **kwargs) -> ModelConfig:
    text = TextConfig(vocab_size=VOCAB, context_length=16, width=64, heads=4, layers=4, stages=4)
    return ModelConfig(image_encoder=encoder, image_size=image_size, embed_dim=64, text=text, **kwargs)


def captions(n: int, length: int = 16, seed: int = 0) -> torch.Tensor:
    """Random captions: [SOS] words [EOS] [PAD]..."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, VOCAB, (n, length), generator=g)
    ends = torch.randint(4, length - 1, (n,), generator=g)
    for row, end in enumerate(ends.tolist()):
        tokens[row, 0], tokens[row, end] = 2, 3
        tokens[row, end + 1 :] = 0
    return tokens
