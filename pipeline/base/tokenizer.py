"""Byte-level BPE tokenizer for captions: training (at build time) and fixed-length encoding.

Special tokens and their ids are fixed: [PAD]=0, [MASK]=1, [SOS]=2, [EOS]=3 (:data:`SPECIAL_IDS`,
the one place the models read them from). A caption becomes ``[SOS] words... [EOS] [PAD]...`` of
exactly ``context_length`` ids; long captions are cut so that the end token is always kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, MASK, SOS, EOS = "[PAD]", "[MASK]", "[SOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, MASK, SOS, EOS)
PAD_ID, MASK_ID, SOS_ID, EOS_ID = range(4)
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class SpecialIds:
    """The special tokens' ids; every tokenizer :class:`CaptionTokenizer` accepts has these."""

    pad: int = PAD_ID
    mask: int = MASK_ID
    sos: int = SOS_ID
    eos: int = EOS_ID

    @property
    def all(self) -> tuple[int, ...]:
        """(pad, mask, sos, eos): the ids that are never words."""
        return (self.pad, self.mask, self.sos, self.eos)


SPECIAL_IDS = SpecialIds()


def train_tokenizer(texts: Iterable[str], vocab_size: int = 32000, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE (lower-cased) with the special tokens at ids 0-3."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((t.lower() for t in texts), trainer=trainer)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == token_id, "special tokens must take ids 0-3"
    return tokenizer


class CaptionTokenizer:
    """Encodes captions to fixed-length id arrays with start/end/padding."""

    def __init__(self, tokenizer: Tokenizer, context_length: int = 77):
        if context_length < 2:
            raise ValueError("context_length must leave room for the start and end tokens")
        for token_id, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != token_id:
                raise ValueError(f"tokenizer must map {token} to id {token_id}")
        self.tokenizer = tokenizer
        self.context_length = context_length

    @classmethod
    def from_file(cls, path: str | Path, context_length: int = 77) -> CaptionTokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer at {path}: `python -m pipeline build` writes one beside the shards")
        return cls(Tokenizer.from_file(str(path)), context_length)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def special_ids(self) -> SpecialIds:
        return SPECIAL_IDS  # checked at construction

    def save(self, path: str | Path) -> None:
        self.tokenizer.save(str(path))

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, context_length) int64 ids: [SOS] ids [EOS] then [PAD]."""
        wrong = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if wrong is not None:
            raise TypeError(f"caption {wrong} is a {type(texts[wrong]).__name__}, not a string")
        out = np.full((len(texts), self.context_length), PAD_ID, dtype=np.int64)
        room = self.context_length - 2
        for row, encoding in enumerate(self.tokenizer.encode_batch([t.lower() for t in texts])):
            ids = encoding.ids[:room]
            out[row, 0] = SOS_ID
            out[row, 1 : 1 + len(ids)] = ids
            out[row, 1 + len(ids)] = EOS_ID
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i >= len(SPECIAL_TOKENS)])
