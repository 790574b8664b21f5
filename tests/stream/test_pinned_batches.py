"""Batches are page-locked only where a CUDA device can use them, and pinning keeps them intact."""

from __future__ import annotations

import torch

from pipeline.stream import Batch, StreamConfig, pins_batches


def test_pinned_only_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pins_batches(StreamConfig())
    assert not pins_batches(StreamConfig(pin_memory=False))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not pins_batches(StreamConfig())


def test_the_loaders_pinning_keeps_a_batch_whole(monkeypatch):
    """What the DataLoader's pinning does to a Batch (params None, position a dict), with
    ``Tensor.pin_memory`` stubbed on a machine without CUDA."""
    from torch.utils.data._utils.pin_memory import pin_memory

    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: pinned.append(self.shape) or self)
    batch = Batch(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.ones(2, 5, dtype=torch.long), None, {"epoch": 1})
    out = pin_memory(batch)
    assert isinstance(out, Batch) and out.params is None and out.position == {"epoch": 1}
    assert torch.equal(out.tokens, batch.tokens) and pinned == [batch.images.shape, batch.tokens.shape]
