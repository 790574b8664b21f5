"""Zero-shot evaluation: classification (CLIP_benchmark's 11 sets, ImageFolder, WebDataset)
and image-text retrieval (Karpathy splits of Flickr30K / MS-COCO, WebDataset pairs)."""

from lightclip.evaluation.errors import DatasetUnavailable
from lightclip.evaluation.metrics import (
    best_positive_rank,
    classification_metrics,
    mean_per_class_recall,
    retrieval_metrics,
)
from lightclip.evaluation.report import markdown_table, write_results
from lightclip.evaluation.runner import EvalConfig, evaluate_dataset, evaluate_model
from lightclip.evaluation.sources import UnknownDataset, known_names, open_dataset
from lightclip.evaluation.zeroshot import zero_shot_classifier

__all__ = [
    "DatasetUnavailable",
    "EvalConfig",
    "UnknownDataset",
    "best_positive_rank",
    "classification_metrics",
    "evaluate_dataset",
    "evaluate_model",
    "known_names",
    "markdown_table",
    "mean_per_class_recall",
    "open_dataset",
    "retrieval_metrics",
    "write_results",
    "zero_shot_classifier",
]
