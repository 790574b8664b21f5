"""The zero-shot evaluation config, importable without the evaluation code (torchvision, datasets):
a training recipe's ``eval`` section is checked when the recipe loads.

Also the bounds checks that evaluation and training configs share (:func:`check_range`,
:func:`check_device`): each failure is a one-line :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from pipeline.base.configs import ConfigError

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")
MAX_BATCH = 1 << 20
MAX_WORKERS = 256
MAX_IMAGE_SIZE = 4096
MAX_CONTEXT = 4096


@dataclass
class EvalConfig:
    """What to evaluate and how. ``datasets``: names understood by
    :func:`lightclip.evaluation.sources.open_dataset`; each named set lives in ``root/<name>``.
    ``strict``: re-raise unexpected errors instead of recording them (a missing dataset is
    always recorded, never raised). ``max_bad_samples``: unreadable samples (a corrupt image,
    a bad label) a set may skip and count before it is recorded as failed."""

    datasets: list[str] = field(default_factory=lambda: ["cifar10"])
    root: str = "data/eval"
    batch_size: int = 64
    num_workers: int = 0
    image_size: int = 0  # 0: the model's training image size (224 when it does not say)
    context_length: int = 0  # 0: the model's context length
    download: bool = False
    amp: bool = True  # float16 autocast on CUDA only
    progress: bool = True
    strict: bool = False
    recall_k: tuple[int, ...] = (1, 5, 10)
    max_bad_samples: int = 100


def check_range(value: float, key: str, low: float, high: float = math.inf) -> None:
    """``low <= value <= high`` (and finite), else a :class:`ConfigError` naming ``key``."""
    if not (math.isfinite(value) and low <= value <= high):
        bound = f">= {number(low)}" if high == math.inf else f"in [{number(low)}, {number(high)}]"
        raise ConfigError(f"{key}={value!r} is out of range: it must be {bound}")


def number(value: float) -> str:
    """``4096`` for a whole number, ``0.001`` otherwise."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_device(name: str, key: str = "device") -> None:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N`` (whether it exists is checked later)."""
    if not DEVICE.match(name):
        raise ConfigError(f"{key} {name!r} is not a device: use auto, cpu, cuda, cuda:N or mps")


def check_eval_config(config: EvalConfig, prefix: str = "eval") -> None:
    """Bounds of every numeric ``eval.*`` key and a non-empty dataset list."""
    if not config.datasets:
        raise ConfigError(f"{prefix}.datasets is empty: name at least one set, e.g. [cifar10]")
    check_range(config.batch_size, f"{prefix}.batch_size", 1, MAX_BATCH)
    check_range(config.num_workers, f"{prefix}.num_workers", 0, MAX_WORKERS)
    check_range(config.image_size, f"{prefix}.image_size", 0, MAX_IMAGE_SIZE)
    check_range(config.context_length, f"{prefix}.context_length", 0, MAX_CONTEXT)
    check_range(config.max_bad_samples, f"{prefix}.max_bad_samples", 0)
    for k in config.recall_k:
        check_range(k, f"{prefix}.recall_k", 1, MAX_BATCH)
