"""The zero-shot evaluation config, importable without the evaluation code (torchvision, datasets):
a training recipe's ``eval`` section is checked when the recipe loads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    """What to evaluate and how. ``datasets``: names understood by
    :func:`lightclip.evaluation.sources.open_dataset`; each named set lives in ``root/<name>``.
    ``strict``: re-raise unexpected errors instead of recording them (a missing dataset is
    always recorded, never raised)."""

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
