"""Image encoders by registry name, each split into 4 stages with strides 4/8/16/32.

Every encoder returns its stage feature maps channels-first ``(B, C_k, H/s_k, W/s_k)``. Each
stage ends at a module timm's ``feature_info`` lists, which gives its stride and width.
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
from torch import nn

from lightclip.modelconfig import STAGE_STRIDES


class StagedImageEncoder(nn.Module):
    """Four sequential stages; ``forward`` returns the list of their outputs (channels-first).
    ``widths``/``strides``: each stage's output channels and reduction of the input size.
    ``nhwc_stages``: the stages emit (B, H, W, C) (timm's Swin), permuted here.
    ``convolutional``: convolutions do most of the work (channels-last memory may pay)."""

    def __init__(
        self,
        stages: list[nn.Module],
        widths: list[int],
        strides: list[int],
        nhwc_stages: bool = False,
        convolutional: bool = True,
    ):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.widths = list(widths)
        self.strides = list(strides)
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


def stage_features(net: nn.Module, ends: tuple[str, ...]) -> tuple[list[int], list[int]]:
    """(widths, strides) of the stages that end at ``ends``, from timm's ``feature_info``; a
    split whose strides are not :data:`STAGE_STRIDES` is refused (the token stage and the
    start-up checks assume them)."""
    info = {entry["module"]: entry for entry in net.feature_info}
    missing = [name for name in ends if name not in info]
    if missing:
        raise RuntimeError(f"{type(net).__name__}: {missing} not in timm's feature_info {sorted(info)}")
    widths, strides = [info[n]["num_chs"] for n in ends], [info[n]["reduction"] for n in ends]
    if tuple(strides) != STAGE_STRIDES:
        raise RuntimeError(f"{type(net).__name__}: stages end at strides {strides}, not {list(STAGE_STRIDES)}")
    return widths, strides


def build_resnet18(image_size: int) -> StagedImageEncoder:
    net = timm_network("resnet18", image_size)
    stem = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, net.layer1)
    widths, strides = stage_features(net, ("layer1", "layer2", "layer3", "layer4"))
    return StagedImageEncoder([stem, net.layer2, net.layer3, net.layer4], widths, strides)


def build_mobilenet_v2(image_size: int) -> StagedImageEncoder:
    net = timm_network("mobilenet_v2", image_size)
    blocks = net.blocks  # 7 groups; feature_info lists the last of each stride: 0, 1, 2, 4, 6
    stages = [
        nn.Sequential(net.conv_stem, net.bn1, blocks[0], blocks[1]),
        blocks[2],
        nn.Sequential(blocks[3], blocks[4]),
        nn.Sequential(blocks[5], blocks[6], net.conv_head, net.bn2),
    ]
    widths, strides = stage_features(net, ("blocks.1", "blocks.2", "blocks.4", "blocks.6"))
    widths[-1] = net.num_features  # the 1x1 head conv in the last stage widens it past feature_info's
    return StagedImageEncoder(stages, widths, strides)


def build_swin_nano(image_size: int) -> StagedImageEncoder:
    net = timm_network("swin_nano", image_size)
    layers = net.layers
    stages = [
        nn.Sequential(net.patch_embed, layers[0]),
        layers[1],
        layers[2],
        nn.Sequential(layers[3], net.norm),  # the final norm keeps the width
    ]
    widths, strides = stage_features(net, ("layers.0", "layers.1", "layers.2", "layers.3"))
    return StagedImageEncoder(stages, widths, strides, nhwc_stages=True, convolutional=False)


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
