"""The terms of the LightCLIP objective by name, and which of them a loss config turns on."""

from __future__ import annotations

from lightclip.lossconfig import LossConfig
from lightclip.task.instance import InstanceTerm
from lightclip.task.mlm import MLMTerm
from lightclip.task.term import Term
from lightclip.task.token import TokenTerm

# Every term, in the order they are computed and summed; a new term is one entry here.
TERMS: dict[str, type[Term]] = {term.name: term for term in (InstanceTerm, TokenTerm, MLMTerm)}


def term_weights(config: LossConfig) -> dict[str, float]:
    """{name: weight} of the active terms, in :data:`TERMS` order: a term is active iff its
    weight is > 0 (the one place that says so)."""
    weights = {name: term.weight(config) for name, term in TERMS.items()}
    return {name: weight for name, weight in weights.items() if weight > 0}
