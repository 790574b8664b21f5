"""open_clip's train step with the toolkit's towers: the reference row of ``bench_gpu.py``.

What a user would otherwise run: ``open_clip.CLIP`` with a timm image tower (the same timm
network as the toolkit's encoder, average-pooled, linear projection), open_clip's text
transformer of the same width, heads and layers (causal, 77 tokens, no padding trimmed),
``open_clip.ClipLoss``, torch's AdamW with the toolkit's parameter groups, bf16 autocast and
the logit-scale clamp of open_clip's training loop. open_clip is optional (the ``interop``
extra): without it the row says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

import torch
from torch import nn

from lightclip.models.image import timm_network
from lightclip.trainconfig import TrainConfig
from lightclip.training import param_groups

NOT_INSTALLED = "open_clip not installed (pip install open_clip_torch, or the interop extra)"


def openclip_version() -> str | None:
    """The installed open_clip_torch version, or None."""
    try:
        return version("open_clip_torch")
    except PackageNotFoundError:
        return None


def build_openclip(cfg: TrainConfig) -> nn.Module:
    """``open_clip.CLIP`` with ``cfg``'s image encoder as a timm tower and its text shape."""
    open_clip = import_module("open_clip")
    model_cfg, text = cfg.model, cfg.model.text
    vision = open_clip.CLIPVisionCfg(
        timm_model_name="resnet18", timm_pool="avg", timm_proj="linear", image_size=model_cfg.image_size
    )
    text_cfg = open_clip.CLIPTextCfg(
        context_length=text.context_length,
        vocab_size=text.vocab_size,
        width=text.width,
        heads=text.heads,
        layers=text.layers,
    )
    model = open_clip.CLIP(model_cfg.embed_dim, vision, text_cfg, output_dict=True)
    # open_clip's timm tower wraps any timm network: put the toolkit's in (swin_nano is not a timm name).
    model.visual.trunk = timm_network(model_cfg.image_encoder, model_cfg.image_size)
    model.visual.head.proj = nn.Linear(model.visual.trunk.num_features, model_cfg.embed_dim, bias=False)
    return model


def openclip_step(cfg: TrainConfig, images: torch.Tensor, tokens: torch.Tensor) -> Callable[[int], None]:
    """One open_clip optimizer step per call on ``images`` and ``tokens`` (both on the device)."""
    open_clip = import_module("open_clip")
    device = images.device
    model = build_openclip(cfg).to(device)
    opt = cfg.optim
    optimizer = torch.optim.AdamW(param_groups(model, opt.weight_decay), lr=opt.lr, betas=opt.betas, eps=opt.eps)
    loss_fn = open_clip.ClipLoss()
    bf16 = cfg.run.precision == "bf16"

    def step(index: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(images, tokens)
            loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))

    return step
