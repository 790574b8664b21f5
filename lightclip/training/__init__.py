"""The LightCLIP trainer: one compact loop over ``pipeline.stream`` batches.

AdamW (no decay on norms, biases, positional embeddings, logit scale), linear warmup + cosine,
gradient accumulation, AMP (bf16 autocast; fp16 + grad scaler on GPU), DDP through torchrun,
label schedule by training progress, atomic checkpoints with exact mid-epoch resume, metrics
to ``metrics.jsonl`` and TensorBoard, a start-up summary, and a checkpoint on SIGINT/SIGTERM
(:class:`TrainingInterrupted`). Entry point: :func:`train`.

Modules: ``runtime`` (device, process group, threads), ``optim`` (AdamW groups, lr schedule),
``parts`` (model, objective, optimizer, scaler), ``step`` (one optimizer step, non-finite guard),
``state`` (checkpoint save and restore), ``metrics`` (log lines, data wait), ``session`` (start-up
checks, build, summary), ``signals`` (stop on a signal), ``loop`` (:func:`train`).

Beside :func:`train`, benchmarks build the same pieces and time single steps:
``build_parts(resolve_config(cfg, tokenizer), setup_distributed(cfg.run))`` then :func:`train_step`.
"""

from lightclip.training.loop import TrainResult, train
from lightclip.training.optim import param_groups
from lightclip.training.parts import Parts, build_parts
from lightclip.training.runtime import DistInfo, setup_distributed
from lightclip.training.session import resolve_config
from lightclip.training.signals import TrainingInterrupted
from lightclip.training.step import MicroBatch, NonFiniteLossError, StepResult, train_step

__all__ = [
    "DistInfo",
    "MicroBatch",
    "NonFiniteLossError",
    "Parts",
    "StepResult",
    "TrainResult",
    "TrainingInterrupted",
    "build_parts",
    "param_groups",
    "resolve_config",
    "setup_distributed",
    "train",
    "train_step",
]
