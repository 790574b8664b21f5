"""What the training model's forward takes besides the images, built once per micro-batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from pipeline.base.tokenizer import SPECIAL_IDS


def trim_padding(
    tokens: torch.Tensor, *aligned: torch.Tensor | None, pad_id: int = SPECIAL_IDS.pad, multiple: int = 1
) -> tuple[torch.Tensor | None, ...]:
    """Cut the columns that are padding in every caption of the batch (and the same columns
    of ``aligned`` tensors), keeping a length that is a multiple of ``multiple`` (or the whole
    width), so that few shapes recur. Exact: padded keys are masked out and positions are absolute."""
    used = (tokens != pad_id).any(dim=0).nonzero()
    length = int(used.max()) + 1 if used.numel() else 1
    length = min(-(-length // multiple) * multiple, tokens.shape[1])
    return (tokens[:, :length], *(t if t is None else t[:, :length] for t in aligned))


@dataclass
class ForwardInputs:
    """``tokens`` (B, L) and the keyword inputs the active terms ask for (``token_features``,
    masked tokens and labels...), padding columns trimmed."""

    tokens: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def trimmed(
        cls, tokens: torch.Tensor, columns: dict[str, torch.Tensor], options: dict[str, Any], multiple: int = 1
    ) -> ForwardInputs:
        """``tokens`` and ``columns`` (inputs drawn from them: those shaped like ``tokens`` are
        aligned with it) cut to the columns that are not padding in every caption, rounded up to
        a multiple of ``multiple`` (the one place padding is trimmed), plus ``options``."""
        aligned = {name: value for name, value in columns.items() if value.shape == tokens.shape}
        tokens, *cut = trim_padding(tokens, *aligned.values(), multiple=multiple)
        return cls(tokens, {**options, **columns, **dict(zip(aligned, cut))})

    def to(self, device: torch.device) -> ForwardInputs:
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.extra.items()}
        return ForwardInputs(self.tokens.to(device), moved)
