"""Instance-level contrastive loss with progressively softened labels (LightCLIP, eqs. 3-9)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightclip.lossconfig import LabelMode  # re-exported

LABEL_MODES: tuple[LabelMode, ...] = ("one_hot", "smooth", "importance")


def label_mode_at(progress: float, r1: float = 0.33, r2: float = 0.66) -> LabelMode:
    """Label mode for training progress ``e / E`` in [0, 1]: one-hot, smoothed, importance-aware."""
    if progress < r1:
        return "one_hot"
    return "smooth" if progress < r2 else "importance"


def soft_targets(
    logits: torch.Tensor, positives: torch.Tensor, mode: LabelMode, alpha: float, importance_temperature: float = 1.0
) -> torch.Tensor:
    """Target rows (R, N) summing to 1 for logit rows (R, N) whose positive column is ``positives``.

    ``importance`` spreads ``alpha`` over the negatives of each row in proportion to
    softmax(logits / importance_temperature) restricted to them (1.0: the paper's reading).
    Computed without gradient: the target is a constant.
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown label mode {mode!r}; valid modes: {list(LABEL_MODES)}")
    with torch.no_grad():
        rows, n = logits.shape
        one_hot = F.one_hot(positives, n).to(at_least_fp32(logits).dtype)  # (R, N)
        if mode == "one_hot" or n == 1:
            return one_hot
        if mode == "smooth":
            return (1 - alpha) * one_hot + alpha / (n - 1) * (1 - one_hot)
        negatives = (at_least_fp32(logits.detach()) / importance_temperature).masked_fill(one_hot.bool(), float("-inf"))
        weights = negatives.softmax(dim=1)  # (R, N), 0 at the positive
        return (1 - alpha) * one_hot + alpha * weights


def at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """Losses run in fp32 (or fp64) even when the model runs in bf16/fp16."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean over rows of -sum_k y_k log softmax(logits)_k."""
    return -(targets * at_least_fp32(logits).log_softmax(dim=1)).sum(dim=1).mean()


def instance_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    mode: LabelMode = "one_hot",
    alpha: float = 0.2,
    all_image_embeds: torch.Tensor | None = None,
    all_text_embeds: torch.Tensor | None = None,
    rank: int = 0,
    importance_temperature: float = 1.0,
) -> torch.Tensor:
    """Symmetric soft-label InfoNCE of this rank's pairs against the global batch.

    ``image_embeds``/``text_embeds``: this rank's normalised embeddings (n, D);
    ``all_*``: the gathered global batch (N, D) with this rank's rows at ``rank * n``
    (omit them on one process). With one-hot labels this is exactly CLIP's loss.
    """
    all_image_embeds = image_embeds if all_image_embeds is None else all_image_embeds
    all_text_embeds = text_embeds if all_text_embeds is None else all_text_embeds
    n = image_embeds.shape[0]
    positives = torch.arange(n, device=image_embeds.device) + rank * n
    logits_i2t = logit_scale * image_embeds @ all_text_embeds.T  # (n, N)
    logits_t2i = logit_scale * text_embeds @ all_image_embeds.T  # (n, N)
    loss_i2t = soft_cross_entropy(logits_i2t, soft_targets(logits_i2t, positives, mode, alpha, importance_temperature))
    loss_t2i = soft_cross_entropy(logits_t2i, soft_targets(logits_t2i, positives, mode, alpha, importance_temperature))
    return (loss_i2t + loss_t2i) / 2
