"""LightCLIP towers: staged image encoders, the staged text encoder, fusion and MLM head, and the
inference model :class:`CLIP` (the training model is :class:`lightclip.task.LightCLIP`)."""

from lightclip.models.clip import CLIP, ModelConfig
from lightclip.models.fusion import FusionConfig, ImageToTextFusion, MLMHead
from lightclip.models.image import (
    IMAGE_ENCODERS,
    STAGE_STRIDES,
    StagedImageEncoder,
    build_image_encoder,
)
from lightclip.models.text import TextConfig, TextEncoder

__all__ = [
    "CLIP",
    "FusionConfig",
    "IMAGE_ENCODERS",
    "ImageToTextFusion",
    "MLMHead",
    "ModelConfig",
    "STAGE_STRIDES",
    "StagedImageEncoder",
    "TextConfig",
    "TextEncoder",
    "build_image_encoder",
]
