"""Image towers open_clip's ``TimmModel`` can build by name.

open_clip builds an image tower as ``timm.create_model(timm_model_name)`` and passes no
architecture arguments, so an encoder is loadable in plain open_clip only when timm has a model
of exactly its shape: ``resnet18`` and ``mobilenetv2_100`` (this project's towers are those timm
models, stage for stage). timm has no Swin of swin_nano's shape (embed 48, depths 2-2-6-2), so
:func:`register_trunk` registers ``lightclip_swin_nano_<size>`` with timm in this process: a
trunk that runs this project's own encoder and average-pools its last stage.
"""

from __future__ import annotations

import timm
import torch
from timm.models import register_model
from torch import nn

from lightclip.models.image import build_image_encoder

TIMM_NAMES = {"resnet18": "resnet18", "mobilenet_v2": "mobilenetv2_100"}  # same modules, same order
REGISTERED_PREFIX = "lightclip_"


class StagedTrunk(nn.Module):
    """A timm-style trunk around a staged encoder: ``forward`` -> (B, C) mean of the last stage."""

    def __init__(self, encoder: str, image_size: int):
        super().__init__()
        self.encoder = build_image_encoder(encoder, image_size)
        self.num_features = self.encoder.out_dim
        self.default_cfg = self.pretrained_cfg = {"architecture": timm_name(encoder, image_size)}

    def reset_classifier(self, num_classes: int = 0, global_pool: str = "avg") -> None:
        if num_classes or global_pool not in ("avg", ""):
            raise ValueError(f"{self.default_cfg['architecture']} supports only num_classes=0, avg pooling")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)[-1].mean(dim=(2, 3))  # (B, C)


def timm_name(encoder: str, image_size: int) -> str:
    """The ``timm_model_name`` of ``encoder`` in an open_clip config."""
    return TIMM_NAMES.get(encoder) or f"{REGISTERED_PREFIX}{encoder}_{image_size}"


def needs_registration(name: str) -> bool:
    return name.startswith(REGISTERED_PREFIX)


def register_trunk(name: str) -> None:
    """Register ``lightclip_<encoder>_<size>`` with timm (idempotent) so open_clip can build it."""
    if timm.is_model(name):
        return
    encoder, _, size = name[len(REGISTERED_PREFIX) :].rpartition("_")
    if not size.isdigit():
        raise ValueError(f"{name}: not a lightclip trunk name (lightclip_<encoder>_<image size>)")

    def entry(pretrained: bool = False, **kwargs) -> StagedTrunk:
        return StagedTrunk(encoder, int(size))

    entry.__name__, entry.__module__ = name, __name__
    register_model(entry)


def trunk_state_keys(encoder: str, image_size: int) -> list[str]:
    """State-dict keys of the open_clip trunk of ``encoder``, in module order."""
    name = timm_name(encoder, image_size)
    if needs_registration(name):
        return list(StagedTrunk(encoder, image_size).state_dict())
    return list(timm.create_model(name, pretrained=False, num_classes=0).state_dict())
