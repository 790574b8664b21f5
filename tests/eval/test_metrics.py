"""Metric functions against hand-computed cases, including the tie rule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightclip.evaluation.metrics import (
    best_positive_rank,
    classification_metrics,
    mean_per_class_recall,
    retrieval_metrics,
)


def test_perfect_embeddings_give_full_recall_and_accuracy():
    images = F.normalize(torch.randn(6, 16), dim=-1)
    text_to_image = torch.arange(6).repeat_interleave(5)  # five captions per image
    texts = images[text_to_image]
    metrics = retrieval_metrics(images, texts, text_to_image)
    assert all(value == 1.0 for value in metrics.values()), metrics
    logits = torch.eye(7) * 3
    out = classification_metrics(logits, torch.arange(7))
    assert out == {"acc1": 1.0, "acc5": 1.0, "mean_per_class_recall": 1.0}


def test_known_permutation_gives_known_recall():
    # captions of image i embed as image perm[i]: only the fixed points of perm are hits at 1
    images = torch.eye(5)
    perm = torch.tensor([0, 2, 1, 3, 4])  # three fixed points
    metrics = retrieval_metrics(images, images[perm], torch.arange(5), ks=(1, 2, 5))
    assert metrics["image_retrieval_recall@1"] == pytest.approx(3 / 5)
    assert metrics["text_retrieval_recall@1"] == pytest.approx(3 / 5)
    # a swapped pair: the right partner has score 0 and ranks behind the wrong one and every
    # lower-index zero (tie rule), so image 1 finds its caption at rank 2, image 2 at rank 2
    assert metrics["text_retrieval_recall@2"] == pytest.approx(3 / 5)
    assert metrics["text_retrieval_recall@5"] == 1.0


def test_hand_computed_ranks():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.3, 0.8]])
    positives = torch.tensor([[False, True, False], [True, False, False]])
    assert best_positive_rank(scores, positives).tolist() == [1, 2]


@pytest.mark.parametrize(
    ("positive_ids", "rank"),
    [((0,), 0), ((1,), 1), ((3,), 2), ((1, 3), 1), ((2,), 3), ((2, 3), 2)],
)
def test_ties_rank_lower_index_first_and_any_positive_counts(positive_ids, rank):
    scores = torch.tensor([[0.9, 0.9, 0.1, 0.9]])
    positives = torch.zeros(1, 4, dtype=torch.bool)
    positives[0, list(positive_ids)] = True
    assert best_positive_rank(scores, positives).item() == rank


def test_multiple_positives_and_ties_in_retrieval():
    e = torch.eye(3)
    images = e  # I0=e0, I1=e1, I2=e2
    texts = torch.stack([e[1], e[0], e[2], e[0]])  # T0, T1 of image 0; T2 of image 1; T3 of image 2
    text_to_image = torch.tensor([0, 0, 1, 2])
    m = retrieval_metrics(images, texts, text_to_image, ks=(1, 2, 3))
    # caption -> image ranks: T0 1, T1 0, T2 2 (I2 higher, I0 tied before), T3 2
    assert [m[f"image_retrieval_recall@{k}"] for k in (1, 2, 3)] == [0.25, 0.5, 1.0]
    # image -> caption ranks: I0 0 (its second caption), I1 2, I2 3
    assert m["text_retrieval_recall@1"] == pytest.approx(1 / 3)
    assert m["text_retrieval_recall@2"] == pytest.approx(1 / 3)
    assert m["text_retrieval_recall@3"] == pytest.approx(2 / 3)


def test_classification_metrics_hand_case():
    logits = torch.tensor(
        [
            [5.0, 1.0, 0.0],  # class 0, right
            [5.0, 1.0, 0.0],  # class 0, right
            [0.0, 5.0, 1.0],  # class 0, ranked third: wrong
            [2.0, 2.0, 0.0],  # class 1, tied with class 0 which has the lower index: wrong
        ]
    )
    targets = torch.tensor([0, 0, 0, 1])
    out = classification_metrics(logits, targets)
    assert out["acc1"] == 0.5
    assert math.isnan(out["acc5"])  # fewer than 5 classes, as CLIP_benchmark reports it
    assert out["mean_per_class_recall"] == pytest.approx((2 / 3 + 0) / 2)


def test_top5_and_mean_per_class_recall_ignore_absent_classes():
    logits = torch.arange(8.0).flip(0).repeat(3, 1)  # class 0 first, class 7 last
    targets = torch.tensor([0, 4, 5])  # ranks 0, 4, 5
    out = classification_metrics(logits, targets)
    assert out["acc1"] == pytest.approx(1 / 3)
    assert out["acc5"] == pytest.approx(2 / 3)
    assert mean_per_class_recall(torch.tensor([True, False, False]), targets) == pytest.approx(1 / 3)


def test_rows_without_positive_are_rejected():
    with pytest.raises(ValueError, match="at least one positive"):
        best_positive_rank(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool))
