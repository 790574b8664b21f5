"""EDA caption variants with nlpaug: synonym replacement (WordNet), random swap, random deletion.

K variants per caption, computed once at build time. Variant ``i`` uses method
``methods[i % len(methods)]`` and a random state seeded from (seed, sample key, i), so a
rebuild gives the same strings; when that method cannot change the caption (no replaceable
word), the next methods are tried in order. Synonym replacement keeps the word's sense and
part of speech (:mod:`pipeline.synonyms`); ``augment.synonym.mode: any_sense`` restores plain
nlpaug. WordNet must be present locally (the build fails at once otherwise); the POS tagger is
textblob's bundled one, so no NLTK tagger download is needed. Augmenters are built once per
process and cached.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import pandas as pd

from pipeline.startup import STARTUP
from pipeline.synonyms import SynonymConfig, build_same_sense, check_synonym_config

METHODS = ("synonym", "swap", "delete")
VARIANTS_COLUMN = "variants"
_MAX_TRIES = 4
_LOCK = threading.Lock()


@dataclass(frozen=True)
class RateConfig:
    """EDA swap or delete: ``aug_p`` of the words (None: ``augment.aug_p``), 1 to ``aug_max``."""

    aug_p: float | None = None
    aug_max: int = 10


@dataclass(frozen=True)
class AugmentConfig:
    """Caption variants: ``variants`` (K) strings per caption, ``aug_p`` of the words changed
    unless a method's own section sets its rate."""

    variants: int = 4
    methods: tuple[str, ...] = METHODS
    aug_p: float = 0.3
    seed: int = 0
    synonym: SynonymConfig = field(default_factory=SynonymConfig)
    swap: RateConfig = field(default_factory=RateConfig)
    delete: RateConfig = field(default_factory=RateConfig)

    def rate(self, method: str) -> float:
        own = getattr(self, method).aug_p
        return self.aug_p if own is None else own


def check_config(config: AugmentConfig) -> None:
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown or not config.methods:
        raise ValueError(f"augment.methods {list(config.methods)}: valid names are {list(METHODS)}")
    if config.variants < 0:
        raise ValueError(f"augment.variants must be >= 0, got {config.variants}")
    for method in METHODS:
        if not 0.0 <= config.rate(method) <= 1.0 or getattr(config, method).aug_max < 1:
            raise ValueError(f"augment.{method}: aug_p must lie in [0, 1] and aug_max be >= 1")
    check_synonym_config(config.synonym)


def textblob_pos_tag(tokens: Sequence[str]) -> list[tuple[str, str]]:
    """POS tags through textblob's bundled tagger, one tag per input token (nlpaug's contract)."""
    return list(_cached_pos_tag(tuple(tokens)))


@lru_cache(maxsize=4096)  # synonym variants of one caption share the tagging
def _cached_pos_tag(tokens: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from textblob.en import tag

    tagged = tag(" ".join(tokens), tokenize=False) if tokens else []
    if len(tagged) != len(tokens):  # the tagger split or merged a token: tag them one by one
        tagged = [(tokens[i], (tag(t, tokenize=False) or [(t, "NN")])[0][1]) for i, t in enumerate(tokens)]
    return tuple((token, pos) for token, (_, pos) in zip(tokens, tagged))


class Draws:
    """A private random source for nlpaug augmenters.

    nlpaug draws from the process-global ``random``/``numpy.random`` states, which Dask's own
    threads also use, so seeding them would not make variants reproducible. Every draw of a
    word augmenter goes through ``sample``/``prob``; these replace them on our instances.
    """

    def __init__(self) -> None:
        self.rng = random.Random()

    def sample(self, population, num=None):
        if isinstance(population, list):
            return self.rng.sample(population, num)
        return self.rng.randint(1, population - 2)  # nlpaug: np.random.randint(1, x - 1)

    def prob(self) -> float:
        return self.rng.random()


DRAWS = Draws()


def _build(method: str, config: AugmentConfig):
    import nlpaug.augmenter.word as naw

    if method != "synonym":
        own = getattr(config, method)
        return _use_draws(naw.RandomWordAug(action=method, aug_p=config.rate(method), aug_min=1,
                                            aug_max=own.aug_max))
    from pipeline.wordnet_data import english_wordnet

    english_wordnet()  # raises when WordNet is missing; nlpaug reads this reader
    if config.synonym.mode == "any_sense":
        augmenter = naw.SynonymAug(aug_src="wordnet", aug_p=config.rate(method), aug_min=1,
                                   aug_max=config.synonym.aug_max)
        augmenter.model.predict = lru_cache(maxsize=200_000)(augmenter.model.predict)
    else:
        augmenter = build_same_sense(config.synonym, config.rate(method))
    augmenter.model.pos_tag = textblob_pos_tag
    textblob_pos_tag(["warm", "up"])  # loads the tagger lexicon now, not in the first task
    return _use_draws(augmenter)


def _use_draws(augmenter):
    augmenter.sample = DRAWS.sample
    augmenter.prob = DRAWS.prob
    return augmenter


def augmenters(config: AugmentConfig) -> dict[str, object]:
    """nlpaug augmenters for ``config.methods``, built once per process (WordNet takes seconds)."""
    with STARTUP:  # two task threads may ask at once: build once, one at a time
        return _augmenters(replace(config, variants=0, seed=0))  # one entry per augmenter set


@lru_cache(maxsize=8)
def _augmenters(config: AugmentConfig) -> dict[str, object]:
    return {m: _build(m, config) for m in config.methods}


def variant_seed(seed: int, key: str, index: int, attempt: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{key}/{index}/{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def _run(augmenter, caption: str, state: int) -> str:
    DRAWS.rng.seed(state)
    result = augmenter.augment(caption)
    text = result[0] if isinstance(result, list) else result
    return text if isinstance(text, str) else caption


def _attempts(methods: Sequence[str], index: int) -> list[str]:
    """Variant ``index``'s own method ``_MAX_TRIES`` times, then each other method once."""
    n = len(methods)
    return [methods[index % n]] * _MAX_TRIES + [methods[(index + k) % n] for k in range(1, n)]


def caption_variants(key: str, caption: str, config: AugmentConfig) -> list[str]:
    """K variants of ``caption``, deterministic in (config, key); retried while equal to it."""
    table = augmenters(config)
    variants = []
    with _LOCK:  # DRAWS is shared by the threads of a process
        for index in range(config.variants):
            text = caption
            for attempt, method in enumerate(_attempts(config.methods, index)):
                text = _run(table[method], caption, variant_seed(config.seed, key, index, attempt))
                if text != caption:
                    break
            variants.append(text)
    return variants


def augment_partition(df: pd.DataFrame, config: AugmentConfig) -> pd.DataFrame:
    """``key, caption`` rows -> ``key, variants`` (a list of K strings per row)."""
    return pd.DataFrame(
        {
            "key": df["key"].to_numpy(),
            VARIANTS_COLUMN: [caption_variants(k, c, config) for k, c in zip(df["key"], df["caption"])],
        }
    )


def throughput(captions: Sequence[str], config: AugmentConfig, clock: Callable[[], float]) -> float:
    """Captions per second through :func:`caption_variants` (augmenters loaded beforehand)."""
    augmenters(config)
    start = clock()
    for i, caption in enumerate(captions):
        caption_variants(str(i), caption, config)
    return len(captions) / max(clock() - start, 1e-9)
