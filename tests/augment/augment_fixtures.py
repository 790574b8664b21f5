"""Synthetic images and parameter batches for the augmentation tests."""

import numpy as np
import torch
from PIL import Image

from pipeline.base.photometric import NUM_PARAMS, PARAM_INDEX

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def photo(width: int = 96, height: int = 80, seed: int = 0) -> Image.Image:
    """A smooth colourful pattern with noise (edges, gradients, saturated and grey areas)."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    channels = [128 + 110 * np.sin(xx / (7.0 + 3 * c) + c + seed) * np.cos(yy / (9.0 + 2 * c) - c) for c in range(3)]
    pixels = np.stack(channels, -1) + rs.randn(height, width, 3) * 12
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def uint8_batch(batch: int = 6, size: int = 48, seed: int = 0) -> torch.Tensor:
    """(B, 3, S, S) uint8 made of ``photo`` crops (grey and saturated regions included)."""
    images = [np.asarray(photo(size, size, seed + i)) for i in range(batch)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def params_batch(batch: int = 6, seed: int = 0, **fixed: float) -> torch.Tensor:
    """(B, NUM_PARAMS) with random factors/orders/sigmas; ``fixed`` sets whole columns."""
    g = torch.Generator().manual_seed(seed)
    params = torch.zeros(batch, NUM_PARAMS)
    params[:, 1:4] = 0.6 + 0.8 * torch.rand(batch, 3, generator=g)
    params[:, PARAM_INDEX["hue"]] = -0.1 + 0.2 * torch.rand(batch, generator=g)
    params[:, 5:9] = torch.stack([torch.randperm(4, generator=g) for _ in range(batch)]).float()
    params[:, PARAM_INDEX["sigma"]] = 0.1 + 1.9 * torch.rand(batch, generator=g)
    for name, value in fixed.items():
        params[:, PARAM_INDEX[name]] = value
    return params
