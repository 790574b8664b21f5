"""LightCLIP: lightweight CLIP models trained with instance, token and MLM objectives."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load"]


def __getattr__(name: str):
    # `lightclip.load` without importing torch/onnxruntime at package import time.
    if name == "load":
        from lightclip.inference import load

        return load
    raise AttributeError(f"module 'lightclip' has no attribute {name!r}")
