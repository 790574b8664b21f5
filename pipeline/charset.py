"""Which script a caption is written in, from its letters alone (no language model).

The caption augmenters read English: WordNet synonyms, and word swaps and deletions that assume
spaces between words. :func:`latin_share` is the share of a text's letters that are Latin
(basic Latin, Latin-1, Latin Extended A/B and Additional), enough to tell a Chinese, Japanese,
Russian or Arabic caption from an English one without a model download.
"""

from __future__ import annotations

from pipeline.base.configs import ConfigError

_LATIN_RANGES = ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF))


def is_latin_letter(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _LATIN_RANGES) and char.isalpha()


def latin_share(text: str) -> float:
    """Latin letters / all letters of ``text``; 0.0 when it has no letter at all."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(map(is_latin_letter, letters)) / len(letters)


def check_share(value: float, where: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where} must lie in [0, 1] (share of Latin letters), got {value}")
