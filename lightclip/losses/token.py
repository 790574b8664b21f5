"""Token-level alignment by relaxed bipartite matching within each positive pair (PAPER.md 3)."""

from __future__ import annotations

import torch

from lightclip.losses.instance import at_least_fp32
from lightclip.losses.matching import batched_matching


def token_cost(image_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
    """C = 1 - X W^T per pair: (B, P, D) x (B, Q, D) -> (B, P, Q), values in [0, 2]."""
    return 1 - image_tokens @ text_tokens.transpose(1, 2)


def token_loss(image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of the mean matched cost; the matching is solved on the detached cost.

    ``image_tokens`` (B, P, D) and ``text_tokens`` (B, Q, D) are L2-normalised; ``text_mask``
    (B, Q) is True for tokens that may be matched. Pairs without any such token are left out.
    """
    cost = token_cost(at_least_fp32(image_tokens), at_least_fp32(text_tokens))  # (B, P, Q)
    matched_np = batched_matching(cost.detach().cpu().numpy(), text_mask.detach().cpu().numpy())
    matched = torch.from_numpy(matched_np).to(cost.device)
    per_pair_count = matched.sum(dim=(1, 2))  # (B,)
    has_match = per_pair_count > 0
    if not has_match.any():
        return cost.sum() * 0.0
    per_pair = (cost * matched).sum(dim=(1, 2))[has_match] / per_pair_count[has_match]
    return per_pair.mean()
