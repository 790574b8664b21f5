"""Token-level alignment by relaxed bipartite matching within each positive pair (LightCLIP, eqs. 10-13).

Two readings of the loss over the matched (patch, word) pairs of each positive pair:

- ``infonce`` (default): for every matched word, its matched patch is the positive and the
  other patches of the same image are the negatives (temperature ``tau``); optionally the
  symmetric patch -> word term over the matched patches. Collapsed tokens (all equal) give
  chance level ``log P``, the top of the loss, so collapse is never a minimum. With
  ``negatives: batch`` the patches of every image of the batch are the negatives (and, in the
  symmetric term, the valid words of every caption), as in FILIP's token-wise similarity: a
  word is then matched only by a patch that tells its own image apart from the others, not by
  any patch that merely differs from its neighbours. The matching itself stays inside the pair.
- ``cost``: the mean matched cost ``1 - cos``. It has no negatives: collapsed tokens minimise
  it. Kept for the paper's literal reading, never the default.

The assignment is solved on the detached cost; gradients flow through the similarities only.
"""

from __future__ import annotations

import torch

from lightclip.lossconfig import TokenForm, TokenLossConfig, TokenNegatives  # noqa: F401  (re-exported)
from lightclip.losses.instance import at_least_fp32
from lightclip.losses.matching import PendingMatching, batched_matching, start_matching


def token_cost(image_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
    """C = 1 - X W^T per pair: (B, P, D) x (B, Q, D) -> (B, P, Q), values in [0, 2]."""
    return 1 - image_tokens @ text_tokens.transpose(1, 2)


def start_token_matching(image_tokens: torch.Tensor, text_tokens: torch.Tensor, mask: torch.Tensor) -> PendingMatching:
    """Start the assignment of (B, P, D) patches to (B, Q, D) words off the critical path (see
    :func:`start_matching`); ``mask`` (B, Q) the words that may match. Non-finite costs read
    as the maximum."""
    with torch.no_grad():
        cost = token_cost(image_tokens.detach().float(), text_tokens.detach().float()).nan_to_num(2.0, 2.0, 2.0)
    return start_matching(cost, mask)


def solve_assignment(similarity: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """(B, P, Q) bool: the minimum-cost one-to-one matching of each pair (detached)."""
    cost = (1 - similarity.detach()).float().cpu().numpy()
    matched = batched_matching(cost, text_mask.detach().cpu().numpy())
    return torch.from_numpy(matched).to(similarity.device)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over pairs (rows with weight) of the weighted mean of ``values`` (B, K)."""
    count = weights.sum(dim=1)
    has = count > 0
    if not has.any():
        return values.sum() * 0.0
    return ((values * weights).sum(dim=1)[has] / count[has]).mean()


def _own_block(logp: torch.Tensor) -> torch.Tensor:
    """(B, K, B, M) log-probabilities over every item of the batch -> (B, K, M): each row's
    entries for its own pair."""
    own = torch.arange(logp.shape[0], device=logp.device)
    return logp[own, :, own, :]


def _word_log_probs(logits: torch.Tensor, cross: torch.Tensor | None) -> torch.Tensor:
    """(B, P, Q) log-softmax of each word over the patches: its own image's, or (``cross``:
    (B_text, Q, B_image, P) logits) every image's, read at its own image's patches."""
    if cross is None:
        return logits.log_softmax(dim=1)
    b, q, _, p = cross.shape
    logp = cross.reshape(b, q, -1).log_softmax(dim=2).view(b, q, b, p)
    return _own_block(logp).transpose(1, 2)


def _patch_log_probs(logits: torch.Tensor, cross: torch.Tensor | None, text_mask: torch.Tensor) -> torch.Tensor:
    """(B, P, Q) log-softmax of each patch over the valid words: its own caption's, or every
    caption's (``cross``), read at its own caption's words; 0 at invalid words."""
    valid = text_mask[:, None, :]  # (B, 1, Q)
    if cross is None:
        logp = logits.masked_fill(~valid, float("-inf")).log_softmax(dim=2)
    else:
        b, q, _, p = cross.shape
        by_patch = cross.permute(2, 3, 0, 1).masked_fill(~text_mask[None, None], float("-inf"))  # (Bi, P, Bt, Q)
        logp = _own_block(by_patch.reshape(b, p, -1).log_softmax(dim=2).view(b, p, b, q))
    return logp.masked_fill(~valid, 0.0)


def token_infonce(
    similarity: torch.Tensor,
    matched: torch.Tensor,
    text_mask: torch.Tensor,
    scale: torch.Tensor | float,
    symmetric: bool = False,
    cross_similarity: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE over patches for each matched word (and, ``symmetric``, over the valid words for
    each matched patch). ``similarity`` (B, P, Q) cosines, ``matched`` (B, P, Q) bool
    assignment, ``text_mask`` (B, Q) valid words, ``scale`` = 1 / temperature;
    ``cross_similarity`` (B_text, Q, B_image, P): every caption's words against every image's
    patches, whose other pairs then serve as negatives (``negatives: batch``)."""
    logits = at_least_fp32(similarity) * scale  # (B, P, Q)
    cross = None if cross_similarity is None else at_least_fp32(cross_similarity) * scale
    weights = matched.to(logits.dtype)
    word_matched = weights.sum(dim=1)  # (B, Q) 1 at matched words
    word_terms = -(_word_log_probs(logits, cross) * weights).sum(dim=1)  # (B, Q)
    loss = _masked_mean(word_terms, word_matched)
    if not symmetric:
        return loss
    patch_terms = -(_patch_log_probs(logits, cross, text_mask) * weights).sum(dim=2)  # (B, P)
    return (loss + _masked_mean(patch_terms, weights.sum(dim=2))) / 2


def matched_cost(similarity: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of the mean matched cost ``1 - cos`` (the ``cost`` form)."""
    cost = 1 - at_least_fp32(similarity)
    weights = matched.to(cost.dtype)
    return _masked_mean((cost * weights).flatten(1), weights.flatten(1))


def token_loss(
    image_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
    config: TokenLossConfig | None = None,
    scale: torch.Tensor | float | None = None,
    matched: torch.Tensor | None = None,
) -> torch.Tensor:
    """The token term of normalised ``image_tokens`` (B, P, D) and ``text_tokens`` (B, Q, D);
    ``text_mask`` (B, Q) marks the words that may be matched (pairs without any are left out).
    ``scale``: 1/temperature (default ``1 / config.temperature``); ``matched``: a precomputed
    assignment (else solved here)."""
    config = config or TokenLossConfig()
    similarity = at_least_fp32(image_tokens) @ at_least_fp32(text_tokens).transpose(1, 2)  # (B, P, Q)
    if matched is None:
        matched = solve_assignment(similarity, text_mask)
    if config.form == "cost":
        return matched_cost(similarity, matched)
    scale = 1 / config.temperature if scale is None else scale
    cross = None
    if config.negatives == "batch":
        cross = torch.einsum("iqd,jpd->iqjp", at_least_fp32(text_tokens), at_least_fp32(image_tokens))
    return token_infonce(similarity, matched, text_mask.bool(), scale, config.symmetric, cross)
