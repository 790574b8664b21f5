"""EDA caption variants with nlpaug: synonym replacement (WordNet), random swap, random deletion.

Up to K variants per caption, computed once at build time, all different from each other and
from the caption. Variant ``i`` uses method ``methods[i % len(methods)]`` with a random state
seeded from (seed, sample key, i, attempt), so a rebuild gives the same strings. A variant
that repeats the caption or an earlier variant is drawn again; a method's second round (the
fourth variant of [synonym, swap, delete]) first tries that method followed by the next one;
then the other methods are tried, alone and combined. A caption that allows fewer distinct
variants gets fewer. A caption whose letters are mostly not Latin (``min_latin_share``) gets
none: the augmenters read English.

Synonym replacement keeps the word's sense and part of speech (:mod:`pipeline.synonyms`);
``augment.synonym.mode: any_sense`` restores plain nlpaug. Swap never moves the first word,
so no word changes case. WordNet is loaded only when a synonym variant is drawn (the build
checks it is present up front); the POS tagger is textblob's bundled one. Augmenters are built
once per process, on first use, and cached.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import pandas as pd

from pipeline.base.configs import ConfigError, check_choices
from pipeline.charset import check_share, latin_share
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
    unless a method's own section sets its rate; captions with under ``min_latin_share`` of
    Latin letters get no variants."""

    variants: int = 4
    methods: tuple[str, ...] = METHODS
    aug_p: float = 0.3
    seed: int = 0
    min_latin_share: float = 0.5
    synonym: SynonymConfig = field(default_factory=SynonymConfig)
    swap: RateConfig = field(default_factory=RateConfig)
    delete: RateConfig = field(default_factory=RateConfig)

    def rate(self, method: str) -> float:
        own = getattr(self, method).aug_p
        return self.aug_p if own is None else own


def check_config(config: AugmentConfig) -> None:
    check_choices("augment.methods", config.methods, METHODS)
    if config.variants < 0:
        raise ConfigError(f"augment.variants must be >= 0, got {config.variants}")
    for method in METHODS:
        if not 0.0 <= config.rate(method) <= 1.0 or getattr(config, method).aug_max < 1:
            raise ConfigError(f"augment.{method}: aug_p must lie in [0, 1] and aug_max be >= 1")
    check_share(config.min_latin_share, "augment.min_latin_share")
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
    if method != "synonym":
        return _use_draws(_random_word_aug(method, config))
    import nlpaug.augmenter.word as naw

    from pipeline.wordnet_data import english_wordnet

    english_wordnet()  # raises when WordNet is missing; nlpaug reads this reader
    if config.synonym.mode == "any_sense":
        aug = naw.SynonymAug(aug_src="wordnet", aug_p=config.rate(method), aug_min=1, aug_max=config.synonym.aug_max)
        aug.model.predict = lru_cache(maxsize=200_000)(aug.model.predict)
    else:
        aug = build_same_sense(config.synonym, config.rate(method))
    aug.model.pos_tag = textblob_pos_tag
    textblob_pos_tag(["warm", "up"])  # loads the tagger lexicon now, not in the first task
    return _use_draws(aug)


def _random_word_aug(method: str, config: AugmentConfig):
    """nlpaug's swap or delete; swap leaves the first word where it is (nlpaug re-cases the words
    it moves in and out of the first place: "white square" became "Square white")."""
    import nlpaug.augmenter.word as naw

    class FirstWordStaysAug(naw.RandomWordAug):
        def swap(self, data):
            return data if len(data.split()) < 3 else super().swap(data)

        def _get_random_aug_idxes(self, tokens):
            if self.action != "swap":
                return super()._get_random_aug_idxes(tokens)
            return [i + 1 for i in super()._get_random_aug_idxes(tokens[1:])]

        def _get_swap_position(self, pos, token_length):
            return pos + 1 if pos == 1 else super()._get_swap_position(pos, token_length)

    own = getattr(config, method)
    return FirstWordStaysAug(action=method, aug_p=config.rate(method), aug_min=1, aug_max=own.aug_max)


def _use_draws(augmenter):
    augmenter.sample = DRAWS.sample
    augmenter.prob = DRAWS.prob
    return augmenter


def _setting(config: AugmentConfig) -> AugmentConfig:
    """Only the fields an augmenter depends on: one cache entry per setting."""
    return replace(config, variants=0, seed=0, min_latin_share=0.0)


def augmenter(method: str, config: AugmentConfig):
    """The nlpaug augmenter of ``method``, built on first use, once per process (WordNet takes
    seconds, so it is loaded only when a synonym variant is drawn)."""
    with STARTUP:  # two task threads may ask at once: build once, one at a time
        return _augmenter(method, _setting(config))


def augmenters(config: AugmentConfig) -> dict[str, object]:
    """Every augmenter of ``config.methods``, built now (a warm-up); one table per setting."""
    with STARTUP:
        return _augmenters(_setting(config))


@lru_cache(maxsize=8)
def _augmenters(config: AugmentConfig) -> dict[str, object]:
    return {m: augmenter(m, config) for m in config.methods}


@lru_cache(maxsize=16)
def _augmenter(method: str, config: AugmentConfig):
    return _build(method, config)


def variant_seed(seed: int, key: str, index: int, attempt: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{key}/{index}/{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def _run(augmenter, caption: str, state: int) -> str:
    DRAWS.rng.seed(state)
    result = augmenter.augment(caption)
    text = result[0] if isinstance(result, list) else result
    return text if isinstance(text, str) else caption


def _attempts(methods: Sequence[str], index: int) -> list[tuple[str, ...]]:
    """Method chains for variant ``index``: its own method (first round: ``_MAX_TRIES`` draws;
    later rounds: first chained with each other method, so that the round does not repeat the
    first one), then each other method alone, then the other methods chained."""
    n = len(methods)
    own = methods[index % n]
    others = [methods[(index + k) % n] for k in range(1, n)]
    chained = [(own, other) for other in others]
    if index < n:
        first = [(own,)] * _MAX_TRIES + [(m,) for m in others] + chained
    else:
        first = chained + [(own,)] * _MAX_TRIES + [(m,) for m in others]
    return first + [(a, b) for a in others for b in others if a != b]


def augmentable(caption: str, config: AugmentConfig) -> bool:
    """Whether ``caption`` gets variants: some words, mostly Latin letters."""
    return len(caption.split()) > 1 and latin_share(caption) >= config.min_latin_share


def _draw(chain: tuple[str, ...], caption: str, config: AugmentConfig, state: int) -> str:
    text = caption
    for step, method in enumerate(chain):
        text = _run(augmenter(method, config), text, state + step)
    return text


def caption_variants(key: str, caption: str, config: AugmentConfig) -> list[str]:
    """Up to K variants of ``caption``, deterministic in (config, key), each different from the
    caption and from every other variant; none for a caption :func:`augmentable` refuses."""
    if config.variants <= 0 or not augmentable(caption, config):
        return []
    seen, variants = {caption.strip()}, []
    with _LOCK:  # DRAWS is shared by the threads of a process
        for index in range(config.variants):
            for attempt, chain in enumerate(_attempts(config.methods, index)):
                text = _draw(chain, caption, config, variant_seed(config.seed, key, index, attempt))
                if text.strip() not in seen:
                    seen.add(text.strip())
                    variants.append(text)
                    break
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
