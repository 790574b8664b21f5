"""Batched MoCo-v2 photometric ops on (B, 3, S, S) image tensors, run where the batch lives.

The loader draws the photometric parameters per sample (see ``pipeline.base.augment_image``) and ships
them as a float tensor (B, NUM_PARAMS) laid out as ``PARAM_FIELDS``; ``apply_photometric`` then
applies colour jitter (in each sample's own op order), random grayscale, Gaussian blur with a
per-sample sigma and CLIP normalisation as whole-batch tensor operations: no Python loop over
samples and no host-device synchronisation, so it runs on CUDA or CPU alike.

The jitter ops follow ``torchvision.transforms.functional.adjust_*`` on float tensors (same
grayscale weights, same clamps, hue through RGB->HSV->RGB); the blur is torchvision's Gaussian
kernel with reflect padding and a kernel size chosen from sigma by ``blur_kernel_size``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as nnf

if TYPE_CHECKING:
    from pipeline.base.augment_image import MoCoConfig

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Column layout of the per-sample parameter tensor; "flip" is applied in the loader and only
# recorded here. Jitter op codes follow torchvision's ColorJitter ``fn_idx``.
PARAM_FIELDS = (
    "jitter",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "order0",
    "order1",
    "order2",
    "order3",
    "grayscale",
    "blur",
    "sigma",
    "flip",
)
PARAM_INDEX = {name: i for i, name in enumerate(PARAM_FIELDS)}
NUM_PARAMS = len(PARAM_FIELDS)
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
_NO_OP = -1
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale (ITU-R 601-2)
BLUR_TRUNCATE = 3.0  # kernel radius = ceil(BLUR_TRUNCATE * sigma)


@lru_cache(maxsize=64)
def _constant(values: tuple[float, ...], shape: tuple[int, ...], device, dtype) -> torch.Tensor:
    """A small constant tensor, made once per device/dtype (no host->device copy per batch)."""
    return torch.tensor(values, dtype=dtype).view(shape).to(device)


def blur_kernel_size(sigma: float) -> int:
    """Odd kernel size covering +-3 sigma: ``2 * ceil(3 * sigma) + 1`` (13 taps at sigma 2)."""
    return 2 * math.ceil(BLUR_TRUNCATE * float(sigma)) + 1


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [0, 1], as ``ToTensor`` scales."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 image batch, got {images.dtype}; pass the loader's batch")
    return images.float().div_(255.0)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma with torchvision's weights."""
    weights = _constant(_GRAY_WEIGHTS, (1, 3, 1, 1), x.device, x.dtype)
    if x.device.type != "cpu":  # stay in exact fp32 whatever the matmul precision setting
        return (x * weights).sum(dim=1, keepdim=True)
    batch, channels, height, width = x.shape  # on CPU one matmul is ~9x faster than the sum
    flat = torch.matmul(weights.view(1, 3), x.reshape(batch, channels, height * width))
    return flat.view(batch, 1, height, width)


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)


def _blend(x: torch.Tensor, target: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend``: clamp(ratio * x + (1 - ratio) * target) per sample."""
    ratio = _per_sample(ratio).to(x.dtype)
    return torch.addcmul((1.0 - ratio) * target, x, ratio).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample ``F.adjust_brightness`` on float images; ``factor`` (B,)."""
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample ``F.adjust_contrast``: blend with the mean luma of each image."""
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample ``F.adjust_saturation``: blend with each image's grayscale."""
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample ``F.adjust_hue``: rotate the HSV hue by ``factor`` (B,) turns, S and V kept.

    Uses the closed form rgb = V - C * clamp(min(k, 4 - k), 0, 1), k = (n + 6 H) mod 6 with
    chroma C = V * S, which equals torchvision's piecewise HSV->RGB up to float rounding.
    """
    r, g, b = x.unbind(dim=1)
    maxc = x.amax(dim=1)  # (B, H, W): V
    chroma = maxc - x.amin(dim=1)
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    # hue in sextants (0..6): base sextant of the max channel + signed offset within it
    offset = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    offset = offset.div_(chroma.clamp(min=1e-12))  # grey pixels: 0 / eps = 0, and C = 0 anyway
    shift = 6.0 * factor.to(x.dtype).view(-1, 1, 1)
    hue = offset.add_(torch.where(is_r, shift, torch.where(is_g, shift + 2.0, shift + 4.0)))
    n = _constant((5.0, 3.0, 1.0), (1, 3, 1, 1), x.device, x.dtype)
    k = torch.remainder(hue.unsqueeze(1) + n, 6.0)  # (B, 3, H, W)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    out = torch.addcmul(maxc.unsqueeze(1), chroma.unsqueeze(1), ramp, value=-1.0)
    return out.clamp_(0.0, 1.0)


def _linear_jitter_step(x: torch.Tensor, codes: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """One brightness/contrast/saturation step, chosen per sample by ``codes`` (-1: none)."""
    ratio = factors.gather(1, codes.clamp(min=0).unsqueeze(1)).squeeze(1)
    ratio = torch.where(codes >= 0, ratio, torch.ones_like(ratio))  # 1 * x + 0 * t == x exactly
    gray = grayscale(x)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    is_contrast = _per_sample(codes == CONTRAST).to(x.dtype)
    is_saturation = _per_sample(codes == SATURATION).to(x.dtype)
    return _blend(x, torch.addcmul(is_contrast * mean, gray, is_saturation), ratio)


def _split_order(order: torch.Tensor, apply: torch.Tensor) -> tuple[list, list]:
    """Per-sample op codes before and after hue, 3 slots each, padded with -1."""
    hue_at = (order == HUE).to(torch.int64).argmax(dim=1)  # (B,)
    none = torch.full_like(order[:, 0], _NO_OP)
    before, after = [], []
    for slot in range(3):
        before.append(torch.where((slot < hue_at) & apply, order[:, slot], none))
        index = (hue_at + 1 + slot).clamp(max=3).unsqueeze(1)
        valid = (hue_at + 1 + slot <= 3) & apply
        after.append(torch.where(valid, order.gather(1, index).squeeze(1), none))
    return before, after


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """ColorJitter with per-sample factors (B, 4), op order (B, 4) and apply flags (B,).

    Each sample's sequence is split around its hue op: up to three linear steps, one hue step
    on the whole batch, up to three linear steps; absent steps are exact identities.
    """
    before, after = _split_order(order.to(torch.int64), apply.bool())
    for codes in before:
        x = _linear_jitter_step(x, codes, factors)
    x = adjust_hue(x, torch.where(apply.bool(), factors[:, HUE], torch.zeros_like(factors[:, HUE])))
    for codes in after:
        x = _linear_jitter_step(x, codes, factors)
    return x


def random_grayscale(x: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Replace the flagged samples (B,) by their 3-channel grayscale."""
    return torch.where(_per_sample(flags.bool()), grayscale(x).expand_as(x), x)


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(B,) sigmas -> (B, 2 * radius + 1) normalised 1-D kernels, each truncated at its own
    ``ceil(3 sigma)`` (capped at ``radius``), i.e. torchvision's kernel for ``blur_kernel_size``."""
    sigma = sigma.to(torch.float64).clamp(min=1e-6)
    taps = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float64)
    own = torch.ceil(BLUR_TRUNCATE * sigma).clamp(max=radius).unsqueeze(1)
    weights = torch.exp(-0.5 * (taps / sigma.unsqueeze(1)) ** 2) * (taps.abs() <= own)
    return weights / weights.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, flags: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with per-sample sigma (B,) on the flagged samples (B,).

    One grouped conv per direction over all B * 3 channels with reflect padding; the static
    kernel width comes from ``max_sigma`` so that no sigma has to be read back to the host.
    """
    batch, channels, height, width = x.shape
    radius = math.ceil(BLUR_TRUNCATE * max_sigma)
    if radius >= min(height, width):
        raise ValueError(f"blur radius {radius} needs images larger than {height}x{width}")
    kernels = gaussian_kernels(sigma, radius).to(x.dtype).repeat_interleave(channels, dim=0)
    size = 2 * radius + 1
    padded = nnf.pad(x, (radius, radius, radius, radius), mode="reflect")
    padded = padded.reshape(1, batch * channels, height + 2 * radius, width + 2 * radius)
    rows = nnf.conv2d(padded, kernels.view(-1, 1, 1, size), groups=batch * channels)
    out = nnf.conv2d(rows, kernels.view(-1, 1, size, 1), groups=batch * channels)
    return torch.where(_per_sample(flags.bool()), out.view_as(x), x)


def normalize(x: torch.Tensor, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """In-place channel normalisation (as ``T.Normalize``)."""
    shape = (1, len(mean), 1, 1)
    mean_t = _constant(tuple(mean), shape, x.device, x.dtype)
    return x.sub_(mean_t).div_(_constant(tuple(std), shape, x.device, x.dtype))


def _column(params: torch.Tensor, name: str) -> torch.Tensor:
    return params[:, PARAM_INDEX[name]]


@torch.no_grad()
def apply_photometric(images: torch.Tensor, params: torch.Tensor, config: MoCoConfig | None = None) -> torch.Tensor:
    """uint8 (B, 3, S, S) + params (B, NUM_PARAMS) -> normalised float32 (B, 3, S, S).

    Jitter, grayscale, blur and normalisation as the reference MoCo-v2 transform orders them;
    runs on ``images.device`` (``params`` is moved there if needed).
    """
    if params.ndim != 2 or params.shape != (images.shape[0], NUM_PARAMS):
        raise ValueError(
            f"params must be (B, {NUM_PARAMS}) matching images {tuple(images.shape)}, got "
            f"{tuple(params.shape)}; collate the loader's SplitSample params with collate_split"
        )
    max_sigma = config.blur_sigma[1] if config is not None else 2.0
    params = params.to(images.device, non_blocking=True)
    x = to_unit_float(images)
    factors = params[:, PARAM_INDEX["brightness"] : PARAM_INDEX["hue"] + 1]
    order = params[:, PARAM_INDEX["order0"] : PARAM_INDEX["order3"] + 1]
    x = color_jitter(x, factors, order.round(), _column(params, "jitter") > 0.5)
    x = random_grayscale(x, _column(params, "grayscale") > 0.5)
    x = gaussian_blur(x, _column(params, "sigma"), _column(params, "blur") > 0.5, max_sigma)
    return normalize(x)
