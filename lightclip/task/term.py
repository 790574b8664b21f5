"""What one term of the LightCLIP objective is: its weight, what it needs of the model, its loss."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from lightclip.lossconfig import LossConfig
from lightclip.task.model import LightCLIP


class Term:
    """One weighted term. A subclass sets ``name`` (its key in the objective's output and in
    :data:`lightclip.task.registry.TERMS`) and ``outputs`` (the model outputs its loss reads),
    and overrides what applies to it:

    - :meth:`weight`: read from ``LossConfig`` (the built-in terms' ``*_weight`` fields) or
      ``default_weight``; the term is active iff it is > 0 (:func:`~lightclip.task.registry.term_weights`);
    - :meth:`forward_options` and :meth:`token_inputs`: what the model's forward must be given;
    - :meth:`trains`: the model's train-only modules it trains (the others stay frozen);
    - :meth:`prepare`: set-up of the model when the term is active;
    - :meth:`loss`: its named scalars from the model's outputs (``name`` is the weighted one).
    """

    name: ClassVar[str]
    outputs: ClassVar[tuple[str, ...]] = ()
    default_weight: ClassVar[float] = 0.0

    def __init__(self, config: LossConfig, rank: int = 0, world_size: int = 1):
        self.config = config
        self.rank = rank
        self.world_size = world_size

    @classmethod
    def weight(cls, config: LossConfig) -> float:
        return cls.default_weight

    def forward_options(self) -> dict[str, Any]:
        """Keyword inputs of the model's forward (flags such as ``token_features``)."""
        return {}

    def token_inputs(self, model: LightCLIP, tokens: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
        """Keyword inputs drawn from this rank's ``tokens`` (CPU, before trimming: those shaped
        like the tokens are trimmed with them, others such as row indices pass as they are);
        ``seed`` draws whatever the term randomises."""
        return {}

    def trains(self, model: LightCLIP) -> list[nn.Module]:
        """The modules of ``model.train_only()`` this term trains."""
        return []

    def prepare(self, model: LightCLIP) -> None:
        """Set ``model`` up for this term (once, before training)."""

    def schedule_metrics(self, progress: float) -> dict[str, Any]:
        """The term's schedule at ``progress``, for the training log."""
        return {}

    def loss(self, outputs: dict[str, Any], progress: float) -> dict[str, torch.Tensor]:
        """Named scalars from the model's ``outputs`` (floating ones at least fp32, autocast off)."""
        raise NotImplementedError
