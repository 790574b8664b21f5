"""Image transforms for CLIP training and evaluation (model-agnostic).

The per-sample MoCo-v2 transform is the reference path: random resized crop (scale 0.2-1),
colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, PIL Gaussian blur (sigma 0.1-2)
with p 0.5, horizontal flip, then tensor conversion and CLIP normalisation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageFilter
from torchvision import transforms as T

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class MoCoConfig:
    """MoCo-v2 augmentation parameters."""

    size: int = 224
    scale: tuple[float, float] = (0.2, 1.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    flip_p: float = 0.5


class PILGaussianBlur:
    """Gaussian blur with sigma drawn uniformly from ``sigma`` (as MoCo-v2 does, through PIL)."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


def moco_transform(config: MoCoConfig | None = None) -> T.Compose:
    """Per-sample MoCo-v2 transform: PIL RGB image -> normalised float tensor (3, S, S)."""
    config = config or MoCoConfig()
    return T.Compose(
        [
            T.RandomResizedCrop(config.size, scale=config.scale),
            T.RandomApply([T.ColorJitter(*config.jitter)], p=config.jitter_p),
            T.RandomGrayscale(p=config.grayscale_p),
            T.RandomApply([PILGaussianBlur(config.blur_sigma)], p=config.blur_p),
            T.RandomHorizontalFlip(p=config.flip_p),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def eval_transform(size: int = 224) -> T.Compose:
    """Resize the shorter side to ``size``, centre crop, normalise."""
    return T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            _to_rgb,
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )
