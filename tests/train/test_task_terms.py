"""Loss terms: the contract every registered term keeps, and a fourth term added by one class and
one registry entry (it trains, and enters the total loss with its weight)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import tiny_config

from lightclip.lossconfig import LossConfig
from lightclip.task import TERMS, LightCLIP, LightCLIPObjective, Term, term_weights
from lightclip.trainconfig import TrainConfig
from lightclip.training import DistInfo, build_parts, train_step


class EmbeddingCentre(Term):
    """Toy term: an L2 penalty on the batch's mean image and text embeddings."""

    name = "centre"
    outputs = ("image_embeds", "text_embeds")
    default_weight = 0.25

    def loss(self, outputs: dict[str, Any], progress: float) -> dict[str, torch.Tensor]:
        image, text = outputs["image_embeds"].mean(dim=0), outputs["text_embeds"].mean(dim=0)
        return {"centre": image.square().sum() + text.square().sum()}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> TrainConfig:
    run = tmp_path_factory.mktemp("run")
    return tiny_config(Path("unused"), run, "model.image_encoder=mobilenet_v2", "model.text.vocab_size=300")


def batch(rows: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and captions ([SOS] words [EOS] [PAD]...) of ``rows`` pairs."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, 300, (rows, 16), generator=g)
    for row in range(rows):
        end = 3 + row
        tokens[row, 0], tokens[row, end], tokens[row, end + 1 :] = 2, 3, 0
    return torch.randn(rows, 3, 32, 32, generator=g), tokens


def terms_of(objective: LightCLIPObjective, model: LightCLIP, progress: float = 0.5) -> dict[str, float]:
    images, tokens = batch()
    inputs = objective.forward_inputs(model, tokens, seed=5)
    terms = objective(model(images, inputs.tokens, **inputs.extra), progress)
    return {name: float(value.detach()) for name, value in terms.items()}


def test_a_registered_term_enters_the_loss_with_its_weight(cfg, monkeypatch):
    torch.manual_seed(0)
    model = LightCLIP(cfg.model).train()
    without = terms_of(LightCLIPObjective(cfg.loss), model)
    monkeypatch.setitem(TERMS, EmbeddingCentre.name, EmbeddingCentre)  # the one registry line
    objective = LightCLIPObjective(cfg.loss)
    assert objective.weights() == {"instance": 0.8, "token": 0.1, "mlm": 0.1, "centre": 0.25}
    terms = terms_of(objective, model)
    assert terms["centre"] > 0
    assert {k: v for k, v in terms.items() if k not in ("loss", "centre")} == {
        k: v for k, v in without.items() if k != "loss"
    }
    assert terms["loss"] == pytest.approx(without["loss"] + 0.25 * terms["centre"], rel=1e-6)


def test_a_registered_term_trains_and_is_logged(cfg, monkeypatch):
    monkeypatch.setitem(TERMS, EmbeddingCentre.name, EmbeddingCentre)
    parts = build_parts(cfg, DistInfo())
    before = [p.detach().clone() for p in parts.model.clip.parameters()]
    result = train_step(parts, cfg, DistInfo(), [batch(8)], step=1, total=10)
    assert not result.skipped and math.isfinite(result.terms["centre"])
    weighted = sum(w * result.terms[name] for name, w in parts.objective.weights().items())
    assert result.terms["loss"] == pytest.approx(weighted, rel=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(before, parts.model.clip.parameters()))


def test_a_term_at_weight_zero_is_off(cfg, monkeypatch):
    monkeypatch.setitem(TERMS, EmbeddingCentre.name, EmbeddingCentre)
    monkeypatch.setattr(EmbeddingCentre, "default_weight", 0.0)
    loss = replace(cfg.loss, token_weight=0.0)
    assert term_weights(loss) == {"instance": 0.8, "mlm": 0.1}
    objective = LightCLIPObjective(loss)
    assert set(objective.terms) == {"instance", "mlm"}
    assert "token_features" not in objective.forward_inputs(LightCLIP(cfg.model), batch()[1], 0).extra


@pytest.mark.parametrize("name", sorted(TERMS))
def test_every_registered_term_keeps_the_contract(name, cfg):
    """Registered under its own name; asks for inputs the model takes and outputs it gives;
    trains only train-only modules; returns fp32 scalars, its own name among them."""
    term_class = TERMS[name]
    assert term_class.name == name and term_class.outputs
    config = replace(cfg.loss, **{f"{known}_weight": float(known == name) for known in ("instance", "token", "mlm")})
    assert term_weights(config) == {name: 1.0}  # this term alone
    torch.manual_seed(0)
    model = LightCLIP(cfg.model).train()
    objective = LightCLIPObjective(config)
    objective.prepare_model(model)
    term = objective.terms[name]
    train_only = {id(m) for m in model.train_only()}
    assert all(id(m) in train_only for m in term.trains(model))
    assert all(p.requires_grad for m in term.trains(model) for p in m.parameters())
    images, tokens = batch()
    inputs = objective.forward_inputs(model, tokens, seed=5)
    outputs = model(images, inputs.tokens, **inputs.extra)
    assert set(term_class.outputs) <= set(outputs)
    values = term.loss(outputs, 0.5)
    assert name in values
    for value in values.values():
        assert value.ndim == 0 and value.dtype == torch.float32 and torch.isfinite(value)


def test_known_terms_read_their_weights_from_the_loss_config():
    config = LossConfig(instance_weight=0.5, token_weight=0.0, mlm_weight=0.2)
    assert term_weights(config) == {"instance": 0.5, "mlm": 0.2}
