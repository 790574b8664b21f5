"""300 steps on coloured shapes: zero-shot accuracy on held-out images well above chance."""

from __future__ import annotations

import random

import pytest
import torch
from helpers import tiny_config
from synthetic import CLASSES, draw_shape, write_shards

from lightclip.checkpoint import find_tokenizer, load_inference_model
from lightclip.training import train
from pipeline.base.augment_image import eval_transform
from pipeline.base.tokenizer import CaptionTokenizer


def zero_shot_accuracy(checkpoint, per_class: int = 12) -> float:
    model, config = load_inference_model(checkpoint)
    tokenizer = CaptionTokenizer.from_file(find_tokenizer(checkpoint), config.text.context_length)
    rng, transform = random.Random(99), eval_transform(config.image_size)
    labels = [i for i in range(len(CLASSES)) for _ in range(per_class)]
    images = torch.stack([transform(draw_shape(*CLASSES[i], rng)) for i in labels])
    with torch.no_grad():
        text = model.encode_text(torch.from_numpy(tokenizer.encode([f"a {c} {s}" for c, s in CLASSES])))
        predicted = (model.encode_image(images) @ text.T).argmax(dim=1)
    return (predicted == torch.tensor(labels)).float().mean().item()


@pytest.mark.slow
def test_zero_shot_accuracy_after_300_steps(tmp_path):
    write_shards(tmp_path / "shards", [96, 96, 96], seed=1)
    cfg = tiny_config(
        tmp_path / "shards",
        tmp_path / "run",
        "model.image_encoder=mobilenet_v2",
        "optim.max_steps=300",
        "optim.batch_size=32",
        "optim.lr=2.0e-3",
        "data.workers=1",
        "data.image.jitter_p=0.0",
        "data.image.grayscale_p=0.0",
        "data.image.scale=[0.6, 1.0]",
        "run.log_every=50",
        "run.save_every=1000",
    )
    result = train(cfg)
    accuracy = zero_shot_accuracy(result.checkpoint)
    chance = 1 / len(CLASSES)
    print(f"zero-shot accuracy {accuracy:.3f} (chance {chance:.3f})")
    assert accuracy >= 4 * chance, f"zero-shot accuracy {accuracy:.2f} (chance {chance:.2f})"
