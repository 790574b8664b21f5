"""BERT masking and the text-only + fused MLM loss (LightCLIP, eqs. 14-15)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightclip.lossconfig import MaskingConfig  # noqa: F401  (re-exported)
from lightclip.losses.instance import at_least_fp32

IGNORE_INDEX = -100


def masked_rows(rows: int, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(rows,) bool: ``round(fraction * rows)`` rows (at least one) drawn without replacement."""
    device = generator.device if generator is not None else torch.device("cpu")
    keep = torch.zeros(rows, dtype=torch.bool, device=device)
    count = min(rows, max(1, round(fraction * rows)))
    keep[torch.randperm(rows, generator=generator, device=device)[:count]] = True
    return keep


def mask_tokens(
    tokens: torch.Tensor,
    special_ids: tuple[int, ...],
    mask_id: int,
    vocab_size: int,
    config: MaskingConfig = MaskingConfig(),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (masked tokens, labels) for ``tokens`` (B, L).

    Special and padding ids (``special_ids``) are never selected; labels hold the original id at
    selected positions and ``IGNORE_INDEX`` elsewhere. Random replacements are drawn from the
    non-special ids ``[max(special_ids) + 1, vocab_size)``. With ``config.batch_fraction`` < 1,
    only the rows of :func:`masked_rows` (drawn after the per-token draws) keep their masking.
    """
    device = tokens.device

    def uniform() -> torch.Tensor:
        return torch.rand(
            tokens.shape, generator=generator, device=device if generator is None else generator.device
        ).to(device)

    candidates = ~torch.isin(tokens, torch.tensor(special_ids, device=device))
    selected = candidates & (uniform() < config.select_prob)
    action = uniform()
    to_mask = selected & (action < config.mask_prob)
    to_random = selected & (action >= config.mask_prob) & (action < config.mask_prob + config.random_prob)
    first_word = max(special_ids) + 1
    random_ids = torch.randint(
        first_word,
        vocab_size,
        tokens.shape,
        generator=generator,
        device=device if generator is None else generator.device,
    ).to(device)
    if config.batch_fraction < 1.0:
        rows = masked_rows(tokens.shape[0], config.batch_fraction, generator)[:, None].to(device)  # (B, 1)
        selected, to_mask, to_random = selected & rows, to_mask & rows, to_random & rows
    masked = torch.where(to_mask, torch.full_like(tokens, mask_id), tokens)
    masked = torch.where(to_random, random_ids, masked)
    labels = torch.where(selected, tokens, torch.full_like(tokens, IGNORE_INDEX))
    return masked, labels


def mask_global_batch(
    tokens: torch.Tensor,
    special_ids: tuple[int, ...],
    mask_id: int,
    vocab_size: int,
    config: MaskingConfig,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mask_tokens` of this rank's rows ``tokens`` (b, L, CPU), drawn for the global batch
    from one generator seeded with ``seed``, so any number of ranks masks it the same way."""
    rows, length = tokens.shape
    full = torch.zeros(rows * world_size, length, dtype=tokens.dtype)  # padding: never selected
    mine = slice(rank * rows, (rank + 1) * rows)
    full[mine] = tokens
    generator = torch.Generator().manual_seed(seed)
    masked, labels = mask_tokens(full, special_ids, mask_id, vocab_size, config, generator)
    return masked[mine], labels[mine]


def mlm_terms(logits_text: torch.Tensor, logits_fused: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """``mlm_text``, ``mlm_fused`` (cross entropy over the selected positions) and their mean
    ``mlm``; logits (M, V), targets (M,). No selected position gives zeros that keep the graph."""
    if targets.numel() == 0:
        zero = (logits_text.sum() + logits_fused.sum()) * 0.0
        return {"mlm_text": zero, "mlm_fused": zero, "mlm": zero}
    text = F.cross_entropy(at_least_fp32(logits_text), targets)
    fused = F.cross_entropy(at_least_fp32(logits_fused), targets)
    return {"mlm_text": text, "mlm_fused": fused, "mlm": (text + fused) / 2}
