"""Image encoders by registry name, each split into 4 stages with strides 4/8/16/32.

Every encoder returns its stage feature maps channels-first ``(B, C_k, H/s_k, W/s_k)``.
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
from torch import nn

STAGE_STRIDES = (4, 8, 16, 32)


class StagedImageEncoder(nn.Module):
    """Four sequential stages; ``forward`` returns the list of their outputs (channels-first).
    ``nhwc_stages``: the stages emit (B, H, W, C) (timm's Swin), permuted here.
    ``convolutional``: convolutions do most of the work (channels-last memory may pay)."""

    def __init__(
        self, stages: list[nn.Module], widths: list[int], nhwc_stages: bool = False, convolutional: bool = True
    ):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.widths = list(widths)
        self.nhwc_stages = nhwc_stages
        self.convolutional = convolutional
        self.input_format = torch.contiguous_format

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    def use_channels_last(self) -> None:
        """Weights and incoming images in channels-last memory (same shapes, NHWC strides):
        the layout cuDNN's fastest bf16 convolutions want; without it each convolution
        converts its input and output."""
        self.to(memory_format=torch.channels_last)
        self.input_format = torch.channels_last

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        features, x = [], images.contiguous(memory_format=self.input_format)  # images: (B, 3, H, W)
        for stage in self.stages:
            x = stage(x)
            # timm's Swin keeps (B, H, W, C); convert here, the only place that knows.
            features.append(x.permute(0, 3, 1, 2).contiguous() if self.nhwc_stages else x)
        return features


TIMM_NAMES = {"resnet18": "resnet18", "mobilenet_v2": "mobilenetv2_100"}


def timm_network(name: str, image_size: int) -> nn.Module:
    """The whole timm network behind a registered encoder, classifier removed (global pooling
    kept): what another CLIP codebase would wrap as its image tower (``bench/bench_gpu.py``)."""
    if name == "swin_nano":
        return timm.models.swin_transformer.SwinTransformer(
            img_size=image_size,
            patch_size=4,
            embed_dim=48,
            depths=(2, 2, 6, 2),
            num_heads=(3, 6, 12, 24),
            window_size=7,
            num_classes=0,
        )
    return timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=0)


def build_resnet18(image_size: int) -> StagedImageEncoder:
    net = timm_network("resnet18", image_size)
    stem = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, net.layer1)
    return StagedImageEncoder([stem, net.layer2, net.layer3, net.layer4], [64, 128, 256, 512])


def build_mobilenet_v2(image_size: int) -> StagedImageEncoder:
    net = timm_network("mobilenet_v2", image_size)
    blocks = net.blocks  # 7 groups at strides 2, 4, 8, 16, 16, 32, 32
    stages = [
        nn.Sequential(net.conv_stem, net.bn1, blocks[0], blocks[1]),
        blocks[2],
        nn.Sequential(blocks[3], blocks[4]),
        nn.Sequential(blocks[5], blocks[6], net.conv_head, net.bn2),
    ]
    return StagedImageEncoder(stages, [24, 32, 96, net.num_features])


def build_swin_nano(image_size: int) -> StagedImageEncoder:
    net = timm_network("swin_nano", image_size)
    layers = net.layers
    stages = [
        nn.Sequential(net.patch_embed, layers[0]),
        layers[1],
        layers[2],
        nn.Sequential(layers[3], net.norm),
    ]
    return StagedImageEncoder(stages, [48, 96, 192, 384], nhwc_stages=True, convolutional=False)


IMAGE_ENCODERS: dict[str, Callable[[int], StagedImageEncoder]] = {
    "resnet18": build_resnet18,
    "mobilenet_v2": build_mobilenet_v2,
    "swin_nano": build_swin_nano,
}


def build_image_encoder(name: str, image_size: int = 224) -> StagedImageEncoder:
    """Build a registered encoder; an unknown name raises a ``KeyError`` listing the valid ones."""
    if name not in IMAGE_ENCODERS:
        raise KeyError(f"unknown image encoder {name!r}; valid names: {sorted(IMAGE_ENCODERS)}")
    return IMAGE_ENCODERS[name](image_size)
