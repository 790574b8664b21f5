"""Pure metric functions on score matrices.

Tie rule: candidates are ordered by score, highest first, and equal scores by candidate index,
lowest first (the earlier image, caption or class ranks first). This is the order ``torch.topk``
returns on CPU in CLIP_benchmark; here it is explicit so results do not depend on the device.
A query's rank is the position of its best-ranked positive; it is a hit at ``k`` when that rank
is below ``k``, i.e. when any of its positives is in the top ``k`` (CLIP_benchmark's recall@k).
"""

from __future__ import annotations

import torch


def best_positive_rank(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """(Q,) 0-based rank of each query's best-ranked positive among its (N) candidates.

    ``scores``: (Q, N) float; ``positives``: (Q, N) bool with at least one True per row.
    """
    if scores.shape != positives.shape or scores.dim() != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and positives {tuple(positives.shape)} must be the same (Q, N)")
    if not bool(positives.any(dim=1).all()):
        raise ValueError("every query needs at least one positive candidate")
    n = scores.shape[1]
    best = scores.masked_fill(~positives, float("-inf")).max(dim=1).values[:, None]  # (Q, 1)
    index = torch.arange(n, device=scores.device)[None, :]  # (1, N)
    at_best = scores == best  # (Q, N)
    first_best = torch.where(positives & at_best, index, n).min(dim=1).values[:, None]  # (Q, 1)
    higher = (scores > best).sum(dim=1)
    tied_before = (at_best & (index < first_best)).sum(dim=1)  # negatives only, by construction
    return higher + tied_before


def hits_at_k(ranks: torch.Tensor, ks: tuple[int, ...]) -> dict[int, float]:
    """Fraction of queries whose rank is below each ``k``."""
    return {k: (ranks < k).float().mean().item() for k in ks}


def class_ranks(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N,) rank of the true class among the (N, C) logits under the tie rule."""
    positives = torch.zeros_like(logits, dtype=torch.bool)
    positives[torch.arange(len(targets)), targets] = True
    return best_positive_rank(logits, positives)


def mean_per_class_recall(correct: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over the classes present in ``targets`` of the fraction of their samples that are
    ``correct`` (top-1): scikit-learn's ``balanced_accuracy_score``, which CLIP_benchmark uses."""
    classes = torch.unique(targets)
    return torch.stack([correct[targets == c].double().mean() for c in classes]).mean().item()


def classification_from_ranks(ranks: torch.Tensor, targets: torch.Tensor, num_classes: int) -> dict[str, float]:
    """acc1, acc5 (NaN with fewer than 5 classes, as CLIP_benchmark reports it) and mean
    per-class recall, as fractions in [0, 1], from each sample's true-class rank."""
    return {
        "acc1": (ranks < 1).float().mean().item(),
        "acc5": (ranks < 5).float().mean().item() if num_classes >= 5 else float("nan"),
        "mean_per_class_recall": mean_per_class_recall(ranks == 0, targets),
    }


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """acc1, acc5 and mean per-class recall of (N, C) logits against (N,) class ids."""
    return classification_from_ranks(class_ranks(logits, targets), targets, logits.shape[1])


def retrieval_ranks(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    query_group: torch.Tensor,
    candidate_group: torch.Tensor,
    chunk: int = 1024,
) -> torch.Tensor:
    """(Q,) best-positive rank of each query; a candidate is positive for a query when their
    group ids (the image index) are equal. Scores are dot products, computed ``chunk`` queries
    at a time so the full (Q, N) matrix is never held."""
    ranks = []
    for start in range(0, len(queries), chunk):
        block = slice(start, start + chunk)
        scores = queries[block] @ candidates.T
        positives = query_group[block, None] == candidate_group[None, :]
        ranks.append(best_positive_rank(scores, positives))
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def retrieval_metrics(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k both ways, named as CLIP_benchmark names them: ``image_retrieval_recall@k``
    (a caption queries the images) and ``text_retrieval_recall@k`` (an image queries the
    captions; a hit when any of its captions is in the top k)."""
    image_ids = torch.arange(len(image_embeds), device=image_embeds.device)
    text_to_image = text_to_image.to(image_embeds.device)
    t2i = hits_at_k(retrieval_ranks(text_embeds, image_embeds, text_to_image, image_ids), ks)
    i2t = hits_at_k(retrieval_ranks(image_embeds, text_embeds, image_ids, text_to_image), ks)
    out = {f"image_retrieval_recall@{k}": t2i[k] for k in ks}
    out.update({f"text_retrieval_recall@{k}": i2t[k] for k in ks})
    return out
