"""LightCLIP: lightweight CLIP models trained with instance, token and MLM objectives."""

__version__ = "0.1.0"
