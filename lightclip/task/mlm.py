"""The MLM term: text-only and fused masked-word prediction (eqs. 14-15)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightclip.lossconfig import LossConfig
from lightclip.losses.mlm import IGNORE_INDEX, mask_global_batch, mlm_terms
from lightclip.task.model import LightCLIP
from lightclip.task.term import Term
from pipeline.base.tokenizer import SPECIAL_IDS

MLM_ROW_BUCKETS = 8


def mlm_rows(has_masked_word: torch.Tensor, buckets: int = MLM_ROW_BUCKETS) -> torch.Tensor | None:
    """Sorted indices of the rows the MLM passes run on (None: all of them): every row with a
    masked word, topped up with rows without one to a multiple of ``ceil(rows / buckets)``.
    The passes then see at most ``buckets`` batch sizes rather than a new one most steps, which
    kernels that plan per shape (cuDNN attention on a GPU) would pay for each time. Computed on
    the CPU from the labels, so that the step never waits for the device to count them."""
    rows = has_masked_word.shape[0]
    count = int(has_masked_word.sum())
    step = -(-rows // buckets)
    target = min(rows, -(-count // step) * step)
    if count == 0 or target == rows:
        return None
    first = torch.argsort((~has_masked_word).to(torch.uint8), stable=True)  # masked rows first, in order
    return first[:target].sort().values


class MLMTerm(Term):
    """Masks the captions (seeded, the same for any number of ranks), trains the fusion module
    and the MLM head; ``mlm`` (weighted) is the mean of ``mlm_text`` and ``mlm_fused``."""

    name = "mlm"
    outputs = ("mlm_logits_text", "mlm_logits_fused", "mlm_targets")

    @classmethod
    def weight(cls, config: LossConfig) -> float:
        return config.mlm_weight

    def mask(self, model: LightCLIP, tokens: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked tokens, labels) of this rank's rows ``tokens`` (CPU)."""
        return mask_global_batch(
            tokens,
            SPECIAL_IDS.all,
            SPECIAL_IDS.mask,
            model.config.text.vocab_size,
            self.config.masking,
            seed,
            self.rank,
            self.world_size,
        )

    def token_inputs(self, model: LightCLIP, tokens: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
        masked, labels = self.mask(model, tokens, seed)
        inputs = {"mlm_tokens": masked, "mlm_labels": labels}
        rows = mlm_rows((labels != IGNORE_INDEX).any(dim=1))
        return inputs if rows is None else {**inputs, "mlm_rows": rows}

    def trains(self, model: LightCLIP) -> list[nn.Module]:
        return [model.fusion, model.mlm_head]

    def loss(self, outputs: dict[str, Any], progress: float) -> dict[str, torch.Tensor]:
        return mlm_terms(outputs["mlm_logits_text"], outputs["mlm_logits_fused"], outputs["mlm_targets"])
