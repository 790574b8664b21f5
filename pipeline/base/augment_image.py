"""Image transforms for CLIP training and evaluation (model-agnostic).

The per-sample MoCo-v2 transform is the reference path: random resized crop (scale 0.2-1),
colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, PIL Gaussian blur (sigma 0.1-2)
with p 0.5, horizontal flip, then tensor conversion and CLIP normalisation.

The split path does the same augmentation in two places: loader workers decode, crop and flip
(uint8) and draw the photometric parameters (``split_worker_transform``); the training device
applies jitter, grayscale, blur and normalisation to the whole batch
(``pipeline.base.photometric.apply_photometric``). Both paths draw every random number through
``draw_params``, so a seeded sample gets the same parameters whichever path runs.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T
from torchvision.transforms import functional as F

from pipeline.base.photometric import CLIP_MEAN, CLIP_STD
from pipeline.base.streamconfig import MoCoConfig

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "MoCoConfig",
    "MoCoParams",
    "MoCoReference",
    "PILGaussianBlur",
    "SplitSample",
    "SplitWorkerTransform",
    "collate_split",
    "draw_params",
    "eval_transform",
    "moco_transform",
    "sample_rng",
    "sample_seed",
    "split_worker_transform",
]


class PILGaussianBlur:
    """Gaussian blur with sigma drawn uniformly from ``sigma`` (as MoCo-v2 does, through PIL)."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


# --- seeding ------------------------------------------------------------------------------


def sample_seed(seed: int, epoch: int, key: str | int) -> int:
    """A 63-bit seed that depends only on (seed, epoch, sample key), stable across processes."""
    if not isinstance(key, str | int):
        raise TypeError(f"sample key must be str or int (e.g. the '__key__' field), got {key!r}")
    text = f"{int(seed)}\x1f{int(epoch)}\x1f{key}".encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def sample_rng(seed: int, epoch: int, key: str | int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from (seed, epoch, key); pass it to either path."""
    generator = torch.Generator()
    generator.manual_seed(sample_seed(seed, epoch, key))
    return generator


# --- parameter draw (shared by both paths) ----------------------------------------------------

_CROP_TRIES = 10  # as torchvision's RandomResizedCrop
_NUM_UNIFORMS = 4 * _CROP_TRIES + 4 + 4 + 5  # crop tries, op order, factors, 5 decisions


@dataclass(frozen=True)
class MoCoParams:
    """Everything random about one augmented view."""

    crop: tuple[int, int, int, int]  # top, left, height, width in the source image
    flip: bool
    jitter: bool
    factors: tuple[float, float, float, float]  # brightness, contrast, saturation, hue
    order: tuple[int, int, int, int]  # jitter op order, codes as in photometric.JITTER_OPS
    grayscale: bool
    blur: bool
    sigma: float

    def photometric(self) -> torch.Tensor:
        """float32 (photometric.NUM_PARAMS,) laid out as ``photometric.PARAM_FIELDS``."""
        values = (self.jitter, *self.factors, *self.order, self.grayscale, self.blur)
        return torch.tensor([*map(float, values), self.sigma, float(self.flip)], dtype=torch.float32)


def _crop_box(u: list[float], width: int, height: int, config: MoCoConfig) -> tuple:
    """torchvision's RandomResizedCrop.get_params driven by 4 uniforms per try."""
    area = height * width
    log_lo, log_hi = math.log(config.ratio[0]), math.log(config.ratio[1])
    for t in range(_CROP_TRIES):
        u_area, u_ratio, u_top, u_left = u[4 * t : 4 * t + 4]
        target = area * (config.scale[0] + (config.scale[1] - config.scale[0]) * u_area)
        aspect = math.exp(log_lo + (log_hi - log_lo) * u_ratio)
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(u_top * (height - h + 1)), int(u_left * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(config.ratio):
        w, h = width, int(round(width / min(config.ratio)))
    elif in_ratio > max(config.ratio):
        w, h = int(round(height * max(config.ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _jitter_factors(u: list[float], jitter: Sequence[float]) -> tuple[float, ...]:
    """ColorJitter's ranges: 1 +- b/c/s (floored at 0) and +-h; a 0 strength means no change."""
    lows = [max(0.0, 1.0 - v) for v in jitter[:3]] + [-jitter[3]]
    highs = [1.0 + v for v in jitter[:3]] + [jitter[3]]
    return tuple(lo + (hi - lo) * x for lo, hi, x in zip(lows, highs, u))


def draw_params(config: MoCoConfig, width: int, height: int, rng: torch.Generator | None = None) -> MoCoParams:
    """Draw one view's parameters from ``rng`` (None: torch's global generator).

    A single fixed-length block of uniforms is consumed in a fixed order, so the same
    generator state always yields the same parameters on either path.
    """
    u = torch.rand(_NUM_UNIFORMS, generator=rng, dtype=torch.float64).tolist()
    crop = _crop_box(u[: 4 * _CROP_TRIES], width, height, config)
    rest = u[4 * _CROP_TRIES :]
    order = tuple(sorted(range(4), key=lambda i: rest[i]))  # uniform random permutation
    factors = _jitter_factors(rest[4:8], config.jitter)
    jitter_u, gray_u, blur_u, sigma_u, flip_u = rest[8:13]
    sigma = config.blur_sigma[0] + (config.blur_sigma[1] - config.blur_sigma[0]) * sigma_u
    return MoCoParams(
        crop=crop,
        flip=flip_u < config.flip_p,
        jitter=jitter_u < config.jitter_p,
        factors=factors,
        order=order,
        grayscale=gray_u < config.grayscale_p,
        blur=blur_u < config.blur_p,
        sigma=sigma,
    )


class _SeededStage:
    """Holds the config and seed; resolves which generator a call draws from."""

    def __init__(self, config: MoCoConfig | None = None, seed: int | None = None):
        self.config = config or MoCoConfig()
        self.seed = seed

    def _draw(self, image: Image.Image, key, epoch: int, rng) -> MoCoParams:
        if rng is None and self.seed is not None and key is not None:
            rng = sample_rng(self.seed, epoch, key)
        return draw_params(self.config, *image.size, rng)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _crop(image: Image.Image, params: MoCoParams, size: int) -> Image.Image:
    return F.resized_crop(image, *params.crop, [size, size], T.InterpolationMode.BILINEAR)


# --- reference path (per sample, PIL) ----------------------------------------------------------

_PIL_JITTER = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)


def _reference_photometric(image: Image.Image, params: MoCoParams, config: MoCoConfig):
    if params.jitter:
        for op in params.order:
            if config.jitter[op] > 0:  # ColorJitter skips a disabled op
                image = _PIL_JITTER[op](image, params.factors[op])
    if params.grayscale:
        image = F.rgb_to_grayscale(image, num_output_channels=3)
    if params.blur:
        image = image.filter(ImageFilter.GaussianBlur(radius=params.sigma))
    return image


class MoCoReference(_SeededStage):
    """Per-sample MoCo-v2 (PIL ops, as ``moco_transform``) with seedable parameter draws.

    ``t(image, key=k, epoch=e)`` draws from ``sample_rng(seed, e, k)`` when ``seed`` is set;
    ``rng=`` overrides; otherwise torch's global generator.
    """

    def __call__(self, image, key=None, epoch: int = 0, rng=None) -> torch.Tensor:
        image = _rgb(image)
        params = self._draw(image, key, epoch, rng)
        image = _reference_photometric(_crop(image, params, self.config.size), params, self.config)
        if params.flip:
            image = F.hflip(image)
        return F.normalize(F.to_tensor(image), CLIP_MEAN, CLIP_STD)


def moco_transform(config: MoCoConfig | None = None, seed: int | None = None) -> T.Compose | MoCoReference:
    """Per-sample MoCo-v2 transform: PIL RGB image -> normalised float tensor (3, S, S).

    Without ``seed``: torchvision's classes on the global RNGs (the historical behaviour).
    With ``seed``: a ``MoCoReference`` whose draws follow ``sample_rng(seed, epoch, key)``.
    """
    config = config or MoCoConfig()
    if seed is not None:
        return MoCoReference(config, seed)
    return T.Compose(
        [
            T.RandomResizedCrop(config.size, scale=config.scale, ratio=config.ratio),
            T.RandomApply([T.ColorJitter(*config.jitter)], p=config.jitter_p),
            T.RandomGrayscale(p=config.grayscale_p),
            T.RandomApply([PILGaussianBlur(config.blur_sigma)], p=config.blur_p),
            T.RandomHorizontalFlip(p=config.flip_p),
            T.ToTensor(),
            T.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


# --- split path: the loader-worker half ---------------------------------------------------------


class SplitSample(NamedTuple):
    """Loader output of the split path (a sample, or a batch once collated)."""

    image: torch.Tensor  # uint8 (3, S, S) or (B, 3, S, S)
    params: torch.Tensor  # float32 (NUM_PARAMS,) or (B, NUM_PARAMS)


class SplitWorkerTransform(_SeededStage):
    """Picklable worker stage: PIL image -> ``SplitSample`` (crop + flip done, uint8).

    The photometric part is only drawn here; ``apply_photometric`` applies it on the device.
    Seeding as ``MoCoReference``: same (seed, epoch, key) -> same parameters.
    """

    def __call__(self, image, key=None, epoch: int = 0, rng=None) -> SplitSample:
        image = _rgb(image)
        params = self._draw(image, key, epoch, rng)
        image = _crop(image, params, self.config.size)
        if params.flip:  # flip commutes with the pointwise ops and the symmetric blur
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())  # uint8 (3, S, S)
        return SplitSample(pixels, params.photometric())


def split_worker_transform(config: MoCoConfig | None = None, seed: int | None = None) -> SplitWorkerTransform:
    """The loader's image stage for the split path (see ``SplitWorkerTransform``)."""
    return SplitWorkerTransform(config, seed)


def collate_split(samples: Sequence[SplitSample]) -> SplitSample:
    """Stack worker outputs: uint8 (B, 3, S, S) and float32 (B, NUM_PARAMS)."""
    if not samples:
        raise ValueError("collate_split needs at least one sample")
    return SplitSample(torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples]))


# --- evaluation -----------------------------------------------------------------------------


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
