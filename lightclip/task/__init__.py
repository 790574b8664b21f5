"""The LightCLIP training task: the training model and its objective, one module per loss term.

``model`` (:class:`LightCLIP`: CLIP plus fusion, MLM head and token projections), ``inputs``
(the forward's inputs, padding trimmed once), ``term`` (what a term declares), ``instance`` /
``token`` / ``mlm`` (the three terms), ``registry`` (:data:`TERMS`, and which terms a loss config
turns on), ``objective`` (:class:`LightCLIPObjective`, the weighted sum the trainer calls).
"""

from lightclip.task.inputs import ForwardInputs, trim_padding
from lightclip.task.instance import InstanceTerm
from lightclip.task.mlm import MLMTerm
from lightclip.task.model import LightCLIP
from lightclip.task.objective import LightCLIPObjective, weighted_total
from lightclip.task.registry import TERMS, term_weights
from lightclip.task.term import Term
from lightclip.task.token import TokenTerm

__all__ = [
    "TERMS",
    "ForwardInputs",
    "InstanceTerm",
    "LightCLIP",
    "LightCLIPObjective",
    "MLMTerm",
    "Term",
    "TokenTerm",
    "term_weights",
    "trim_padding",
    "weighted_total",
]
