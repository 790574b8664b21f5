"""LightCLIP models: staged image encoders, the staged text encoder, fusion and MLM head."""

from lightclip.models.clip import CLIP, LightCLIP, ModelConfig
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
    "LightCLIP",
    "MLMHead",
    "ModelConfig",
    "STAGE_STRIDES",
    "StagedImageEncoder",
    "TextConfig",
    "TextEncoder",
    "build_image_encoder",
]
