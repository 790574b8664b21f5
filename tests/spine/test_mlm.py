"""BERT masking statistics and the text-only / fused MLM passes."""

import pytest
import torch

from lightclip.losses import IGNORE_INDEX, MaskingConfig, mask_tokens

SPECIAL = (0, 1, 2, 3)


def _captions(n: int, length: int = 20, vocab: int = 500, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, vocab, (n, length), generator=g)
    lengths = torch.randint(3, length - 1, (n,), generator=g)
    for row, size in enumerate(lengths.tolist()):
        tokens[row, 0] = 2
        tokens[row, size] = 3
        tokens[row, size + 1 :] = 0
    return tokens


def test_selection_share_and_80_10_10_split():
    tokens = _captions(12_000)
    words = ~torch.isin(tokens, torch.tensor(SPECIAL))
    g = torch.Generator().manual_seed(1)
    masked, labels = mask_tokens(tokens, SPECIAL, mask_id=1, vocab_size=500, generator=g)
    selected = labels != IGNORE_INDEX
    assert words.sum() > 100_000
    assert not (selected & ~words).any(), "special or padding token selected"
    assert selected.sum() / words.sum() == pytest.approx(0.15, abs=0.005)
    n = selected.sum().item()
    became_mask = (masked == 1) & selected
    unchanged = (masked == tokens) & selected
    random = selected & ~became_mask & ~unchanged
    # a random draw may hit the original id (1/496): count those with "unchanged"
    assert became_mask.sum().item() / n == pytest.approx(0.8, abs=0.01)
    assert random.sum().item() / n == pytest.approx(0.1 * 495 / 496, abs=0.01)
    assert unchanged.sum().item() / n == pytest.approx(0.1 + 0.1 / 496, abs=0.01)
    assert (masked[random] >= 4).all() and (masked[random] < 500).all()


def test_labels_hold_originals_at_selected_positions_only():
    tokens = _captions(200)
    masked, labels = mask_tokens(tokens, SPECIAL, 1, 500, MaskingConfig(select_prob=0.5))
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], tokens[selected])
    assert torch.equal(masked[~selected], tokens[~selected])
    assert (labels[~selected] == IGNORE_INDEX).all()
