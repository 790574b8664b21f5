"""Synonym replacement that keeps the caption's meaning: nlpaug's ``SynonymAug``, constrained.

A word is replaced only when the tagger calls it a content word of an allowed part of speech
(common nouns, verbs, adjectives, adverbs), it is not a stop word, a number or shorter than
``min_length``. Its replacement is a lemma of the same WordNet part of speech, taken from the
word's ``top_senses`` most frequent senses (WordNet's sense counts; an ambiguous word, whose
most frequent sense has under ``min_sense_share`` of its tagged uses, is left alone), never
from an instance synset (a person, a place), single-word, lowercase, seen at least
``min_sense_count`` times in that sense, above the ``min_zipf`` frequency floor (``wordfreq``),
and inflected like the word it replaces (``lemminflect``: plural stays plural, -ing stays -ing);
``a``/``an`` before it follows. Words are split on whitespace only, so punctuation and spacing
come back as they were (a word with punctuation attached is left alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pipeline.base.configs import ConfigError, check_choices
from pipeline.wordnet_data import english_wordnet, require_wordnet

MODES = ("same_sense", "any_sense")
POS_NAMES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
_TAG_POS = {  # Penn Treebank tag (textblob) -> WordNet part of speech; NNP/NNPS never replaced
    "NN": "n",
    "NNS": "n",
    "VB": "v",
    "VBD": "v",
    "VBG": "v",
    "VBN": "v",
    "VBP": "v",
    "VBZ": "v",
    "JJ": "a",
    "JJR": "a",
    "JJS": "a",
    "RB": "r",
    "RBR": "r",
    "RBS": "r",
}
_UPOS = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}
_SS_TYPES = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "s"}  # sense-key synset types
_BASE_TAGS = {"NN", "VB", "VBP", "JJ", "RB"}  # the lemma itself is the surface form
_NOUN_PHRASE_TAGS = {"DT", "JJ", "PRP$", "CD"}  # a "verb" right after these heads a noun phrase

# English function words and auxiliaries (EDA's list, lightly extended): never replaced.
STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
get gets got getting go goes going gone went make makes made let lets may might must shall
one ones thing things way something someone very really much many lot lots
""".split()
)

# Words of place, position and quantity whose most frequent WordNet sense is not the one a
# caption means ("in the middle" -> "in the heart", "on the left" -> "on the leftover"): never
# replaced (a cheap guard; other wrong senses remain possible, see docs/augmentation.md).
SPATIAL_WORDS = frozenset(
    """
middle center centre top bottom side sides front back rear left right edge edges corner corners
end ends inside outside near far behind beside next close upper lower background foreground
view part parts piece pieces half row rows line lines set pair couple group bunch number
kind type sort area place spot point shot picture photo image frame left-hand right-hand
""".split()
)
_NEVER_REPLACED = STOPWORDS | SPATIAL_WORDS


@dataclass(frozen=True)
class SynonymConfig:
    """Synonym replacement. ``mode: any_sense`` is plain nlpaug (any sense, any lemma): the
    constraints below apply to ``same_sense`` only. ``aug_p`` None uses ``augment.aug_p``."""

    mode: Literal["same_sense", "any_sense"] = "same_sense"
    aug_p: float | None = None
    aug_max: int = 10
    pos: tuple[str, ...] = ("noun", "verb", "adj", "adv")
    top_senses: int = 1
    min_sense_share: float = 0.5
    min_sense_count: int = 1
    min_zipf: float = 3.0
    min_length: int = 3
    skip_stopwords: bool = True


def check_synonym_config(config: SynonymConfig) -> None:
    """Raise :class:`ConfigError` naming the bad ``augment.synonym`` field and its valid values."""
    check_choices("augment.synonym.pos", config.pos, POS_NAMES)
    if config.top_senses < 1:
        raise ConfigError(f"augment.synonym.top_senses must be >= 1, got {config.top_senses}")
    if config.min_length < 1 or config.min_sense_count < 0 or not 0 <= config.min_sense_share <= 1:
        raise ConfigError(
            "augment.synonym: min_length must be >= 1, min_sense_count >= 0 and min_sense_share in [0, 1]"
        )


def wordnet_pos(tag: str, config: SynonymConfig) -> str | None:
    """The WordNet part of speech of a Penn tag when ``config`` allows replacing it, else None."""
    pos = _TAG_POS.get(tag)
    allowed = {POS_NAMES[name] for name in config.pos}
    return pos if pos in allowed else None


def replaceable(word: str, tag: str, config: SynonymConfig) -> bool:
    """A content word the recipe lets us touch: allowed tag, letters only, long enough."""
    return (
        wordnet_pos(tag, config) is not None
        and word.isalpha()
        and len(word) >= config.min_length
        and not (config.skip_stopwords and word.lower() in _NEVER_REPLACED)
    )


@lru_cache(maxsize=1)
def sense_counts() -> dict[tuple[str, str, int], int]:
    """(lemma, synset pos, synset offset) -> tag count, read once from WordNet's ``index.sense``.

    The same numbers as NLTK's ``Lemma.count()``, which searches the file on disk at each call.
    """
    counts = {}
    with open(require_wordnet() / "index.sense", encoding="utf8") as lines:  # plain reads: fast
        for line in lines:
            key, offset, _, count = line.split()
            if count != "0":
                name, rest = key.split("%", 1)
                counts[(name, _SS_TYPES[rest[0]], int(offset))] = int(count)
    return counts


def lemma_count(lemma) -> int:
    """How often ``lemma`` (an NLTK Lemma) was tagged in its synset's sense."""
    synset = lemma.synset()
    return sense_counts().get((lemma.name().lower(), synset.pos(), synset.offset()), 0)


def _top_synsets(lemma: str, pos: str, config: SynonymConfig) -> list:
    """The lemma's ``top_senses`` most frequent senses (sense counts, WordNet's order on ties);
    none when the most frequent one has under ``min_sense_share`` of the lemma's tagged uses."""
    wordnet = english_wordnet()

    def count(synset) -> int:
        return sum(lemma_count(lem) for lem in synset.lemmas() if lem.name().lower() == lemma)

    ranked = sorted(((count(s), s) for s in wordnet.synsets(lemma, pos)), key=lambda cs: -cs[0])
    total = sum(c for c, _ in ranked)
    if not ranked or ranked[0][0] < config.min_sense_share * max(total, 1):
        return []
    return [s for _, s in ranked[: config.top_senses]]


def lemmatise(word: str, tag: str, pos: str) -> str | None:
    """The dictionary form of ``word`` as ``tag`` reads it (``men``/NNS -> ``man``)."""
    from lemminflect import getLemma

    wordnet = english_wordnet()
    if tag in _BASE_TAGS:
        return wordnet.morphy(word.lower(), pos)
    forms = getLemma(word.lower(), upos=_UPOS[pos])
    return forms[0] if forms and wordnet.synsets(forms[0], pos) else None


def _good_lemma(name: str, count: int, config: SynonymConfig) -> bool:
    from wordfreq import zipf_frequency

    return (
        name.isalpha()
        and name.islower()
        and len(name) >= config.min_length
        and count >= config.min_sense_count
        and name not in STOPWORDS
        and zipf_frequency(name, "en") >= config.min_zipf
    )


def inflect(lemma: str, tag: str) -> str | None:
    """``lemma`` in the form ``tag`` asks for (``dog``/NNS -> ``dogs``); None when unknown."""
    if tag in _BASE_TAGS:
        return lemma
    from lemminflect import getInflection

    forms = getInflection(lemma, tag=tag)
    return forms[0] if forms else None


@lru_cache(maxsize=200_000)
def candidates(word: str, tag: str, config: SynonymConfig) -> tuple[str, ...]:
    """Same-sense replacements of ``word`` (tagged ``tag``), inflected like it, in WordNet order."""
    from wordfreq import zipf_frequency

    pos = wordnet_pos(tag, config)
    lemma = lemmatise(word, tag, pos) if pos and replaceable(word, tag, config) else None
    if lemma is None:
        return ()
    found: dict[str, None] = {}
    for synset in _top_synsets(lemma, pos, config):
        if synset.instance_hypernyms():
            continue
        for other in synset.lemmas():
            name = other.name()
            if name == lemma or not _good_lemma(name, lemma_count(other), config):
                continue
            form = inflect(name, tag)
            if form and form != word.lower() and zipf_frequency(form, "en") >= config.min_zipf:
                found[form] = None
    return tuple(found)


def _mistagged_verb(tagged: list[tuple[str, str]], index: int) -> bool:
    """A verb tag after a determiner or adjective ("a white cross"/VB) is a tagging error."""
    return index > 0 and tagged[index][1].startswith("VB") and tagged[index - 1][1] in _NOUN_PHRASE_TAGS


def _article(previous: str, word: str) -> str | None:
    """``a``/``an`` before ``word`` when ``previous`` is an indefinite article that must change."""
    if previous.lower() not in ("a", "an"):
        return None
    wanted = "an" if word[0].lower() in "aeiou" else "a"
    if previous.lower() == wanted:
        return None
    return wanted.capitalize() if previous[0].isupper() else wanted


def build_same_sense(config: SynonymConfig, aug_p: float):
    """A :class:`SameSenseSynonymAug` (nlpaug subclass) for ``config``."""
    import nlpaug.augmenter.word as naw

    class SameSenseSynonymAug(naw.SynonymAug):
        """``SynonymAug`` whose draws and candidates follow :func:`candidates`."""

        def skip_aug(self, token_idxes, tokens):
            return [
                i
                for i in token_idxes
                if not _mistagged_verb(tokens, i) and candidates(tokens[i][0], tokens[i][1], config)
            ]

        def substitute(self, data):
            from nlpaug.util import Doc

            if not data or not data.strip():
                return data
            doc = Doc(data, self.tokenizer(data))
            tokens = doc.get_original_tokens()
            tagged = self.model.pos_tag(tokens)
            for seq, index in enumerate(self._get_aug_idxes(tagged) or [], start=1):
                word, tag = tagged[index]
                choice = self.sample(list(candidates(word, tag, config)), 1)[0]
                doc.add_change_log(
                    index,
                    new_token=self.align_capitalization(word, choice),
                    action="substitute",
                    change_seq=self.parent_change_seq + seq,
                )
                article = _article(tokens[index - 1], choice) if index else None
                if article:
                    doc.add_change_log(
                        index - 1, new_token=article, action="substitute", change_seq=self.parent_change_seq + seq
                    )
            return self.reverse_tokenizer(doc.get_augmented_tokens())

    augmenter = SameSenseSynonymAug(
        aug_src="wordnet",
        aug_p=aug_p,
        aug_min=1,
        aug_max=config.aug_max,
        tokenizer=str.split,
        reverse_tokenizer=" ".join,
    )
    candidates("dogs", "NNS", config)  # loads sense counts and frequencies now, not in a task
    inflect("dog", "NNS")  # and lemminflect's tables
    return augmenter
