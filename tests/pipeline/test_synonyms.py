"""Synonym replacement that keeps the sense: same POS, single lowercase common words, inflected."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("NLTK_DATA", str(REPO / ".nltk_data"))

from pipeline.augment_text import AugmentConfig, caption_variants, check_config  # noqa: E402
from pipeline.base.configs import from_dict, load_recipe  # noqa: E402
from pipeline.synonyms import (  # noqa: E402
    STOPWORDS,
    SynonymConfig,
    _article,
    candidates,
    inflect,
    lemma_count,
    replaceable,
)

DEFAULT = SynonymConfig()
SYNONYM = AugmentConfig(variants=4, methods=("synonym",))
CAPTIONS = [line for line in (REPO / "bench/data/captions.txt").read_text().splitlines() if line]
REPORTED = [  # the variants these produced were "opprobrious", "triangulum", "harlan f. stone", ...
    "there is a black star at the bottom and a black triangle",
    "photo of a white cross on a stone background",
    "a large yellow diamond on the left over grass",
    "a small white triangle at the bottom over sand",
]
_TAG_POS = {"N": "n", "V": "v", "J": "a", "R": "r"}


def _changed(caption: str, variant: str) -> list[tuple[str, str]]:
    old, new = caption.split(), variant.split()
    assert len(old) == len(new), (caption, variant)  # one word for one word, spacing kept
    return [(b, a) for b, a in zip(old, new) if b != a and {b, a} != {"a", "an"}]


def test_candidates_keep_part_of_speech_and_inflection():
    assert set(candidates("cars", "NNS", DEFAULT)) >= {"automobiles"}
    assert all(c.endswith("s") for c in candidates("cars", "NNS", DEFAULT))
    assert "big" in candidates("large", "JJ", DEFAULT)
    assert "rapidly" in candidates("quickly", "RB", DEFAULT)
    assert all(c.endswith("ing") for c in candidates("shouting", "VBG", DEFAULT))
    assert inflect("child", "NNS") == "children" and inflect("run", "VBD") == "ran"


def test_rare_multiword_and_proper_lemmas_are_never_candidates():
    assert candidates("stone", "NN", DEFAULT) == ()  # ambiguous: its top sense has 48% of uses
    assert candidates("stone", "NN", SynonymConfig(min_sense_share=0)) == ("rock",)  # no "Harlan"
    assert candidates("shoes", "NNS", DEFAULT) == () and candidates("men", "NNS", DEFAULT) == ()
    assert "butt" not in candidates("bottom", "NN", DEFAULT)  # not the word's frequent sense
    assert candidates("triangle", "NN", DEFAULT) == ()  # "triangulum", "trigon": rare
    assert candidates("black", "JJ", DEFAULT) == ()  # "opprobrious" is another sense
    assert "machine" not in candidates("car", "NN", DEFAULT)  # never tagged in that sense
    assert "domestic dog" not in candidates("dog", "NN", DEFAULT)


def test_only_tagged_content_words_are_replaced():
    assert not replaceable("Paris", "NNP", DEFAULT)
    assert not replaceable("3", "CD", DEFAULT) and not replaceable("3d", "NN", DEFAULT)
    assert not replaceable("is", "VBZ", DEFAULT) and "there" in STOPWORDS
    assert not replaceable("ox", "NN", DEFAULT) and replaceable("ox", "NN", SynonymConfig(min_length=2))
    assert candidates("left", "IN", DEFAULT) == ()
    nouns_only = SynonymConfig(pos=("noun",))
    assert candidates("quickly", "RB", nouns_only) == () and candidates("cars", "NNS", nouns_only)


def test_sense_counts_match_nltk():
    from nltk.corpus import wordnet

    lemmas = [lem for s in wordnet.synsets("car") + wordnet.synsets("large") for lem in s.lemmas()]
    assert [lemma_count(lem) for lem in lemmas] == [lem.count() for lem in lemmas]
    assert any(lemma_count(lem) > 0 for lem in lemmas)


def test_variants_replace_within_the_same_part_of_speech():
    from nltk.corpus import wordnet

    from pipeline.augment_text import textblob_pos_tag

    replaced = 0
    for i, caption in enumerate(CAPTIONS[:120]):
        tags = dict(textblob_pos_tag(caption.split()))
        for variant in caption_variants(str(i), caption, SYNONYM):
            for old, new in _changed(caption, variant):
                pos = _TAG_POS[tags[old][0]]
                assert wordnet.synsets(wordnet.morphy(new, pos) or new, pos), (old, new, tags[old])
                assert re.fullmatch(r"[a-z]+", new.lower()) and new[1:].islower(), new
                replaced += 1
    assert replaced > 100  # distinct variants only (repeats are no longer emitted)


def test_no_multiword_or_capitalised_replacement_on_the_caption_set():
    from wordfreq import zipf_frequency

    for i, caption in enumerate(CAPTIONS + REPORTED):
        for variant in caption_variants(f"k{i}", caption, SYNONYM):
            for old, new in _changed(caption, variant):
                assert new.isalpha() and (new.islower() or old[0].isupper()), (caption, variant)
                assert zipf_frequency(new, "en") >= DEFAULT.min_zipf, new


def test_reported_captions_keep_the_class_words():
    for i, caption in enumerate(REPORTED):
        for variant in caption_variants(str(i), caption, SYNONYM):
            for word in ("star", "triangle", "cross", "diamond", "black", "white", "yellow"):
                assert variant.split().count(word) == caption.split().count(word), variant


def test_articles_follow_the_replacement():
    assert _article("a", "infant") == "an" and _article("An", "kid") == "A"
    assert _article("a", "dog") is None and _article("the", "infant") is None


def test_no_replaceable_word_falls_back_to_the_next_method():
    config = AugmentConfig(variants=2, methods=("synonym", "swap"))
    caption = "there is a black star and a white triangle"
    variants = caption_variants("1", caption, config)
    assert all(v != caption and sorted(v.lower().split()) == sorted(caption.split()) for v in variants)


def test_old_behaviour_is_one_setting_away():
    data = load_recipe(REPO / "recipes/data/demo.yaml", ["augment.synonym.mode=any_sense"])
    old = from_dict(AugmentConfig, {**data["augment"], "variants": 4, "methods": ["synonym"]})
    assert old.synonym.mode == "any_sense"
    pairs = [(v, c) for i, c in enumerate(REPORTED) for v in caption_variants(str(i), c, old)]
    assert any(len(v.split()) > len(c.split()) for v, c in pairs)  # multiword lemmas are back
    ours = [v for i, c in enumerate(REPORTED) for v in caption_variants(str(i), c, SYNONYM)]
    assert ours != [v for v, _ in pairs]


def test_each_method_has_its_own_rate():
    caption = "one two three four five six seven eight nine ten"
    config = AugmentConfig(
        variants=1, methods=("delete",), aug_p=0.1, delete=dataclasses.replace(AugmentConfig().delete, aug_p=0.5)
    )
    assert config.rate("delete") == 0.5 and config.rate("swap") == 0.1
    assert len(caption_variants("1", caption, config)[0].split()) == 5
    with pytest.raises(ValueError, match="augment.delete"):
        check_config(dataclasses.replace(config, delete=dataclasses.replace(config.delete, aug_p=2.0)))
    with pytest.raises(ValueError, match="noun"):
        check_config(AugmentConfig(synonym=SynonymConfig(pos=("nouns",))))


_CHILD = """
import json, sys
from pipeline.augment_text import AugmentConfig, caption_variants
captions = json.loads(sys.argv[1])
config = AugmentConfig(variants=3)
out = {str(i): caption_variants(str(i), c, config) for i, c in reversed(list(enumerate(captions)))}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_seeded_variants_are_identical_across_runs_and_workers():
    captions = CAPTIONS[:40]
    config = AugmentConfig(variants=3)
    here = {str(i): caption_variants(str(i), c, config) for i, c in enumerate(captions)}
    env = dict(os.environ, PYTHONHASHSEED="12345")
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(captions)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here  # other process, other order


def test_english_wordnet_reads_the_same_indexes_as_nltk():
    """The fast sequential reads of the index and exception files give NLTK's own maps."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from pipeline.wordnet_data import english_wordnet, require_wordnet

    ours = english_wordnet()
    stock = WordNetCorpusReader(str(require_wordnet()), None)
    assert ours._lemma_pos_offset_map == stock._lemma_pos_offset_map
    assert ours._exception_map == stock._exception_map
    assert ours._lexnames == stock._lexnames
    assert [s.name() for s in ours.synsets("dog")] == [s.name() for s in stock.synsets("dog")]
    assert ours.lemma_from_key("dog%1:05:00::").name() == "dog"  # index.sense: still seekable


@pytest.mark.parametrize(
    "caption",
    [
        "a red circle in the middle of the picture",
        "a large yellow diamond on the left",
        "a blue square at the top of the image",
        "a green triangle on the right side",
    ],
)
def test_place_words_keep_their_sense(caption):
    variants = caption_variants("5", caption, SYNONYM)
    place = {"middle", "left", "top", "right", "side", "picture", "image"} & set(caption.split())
    assert all(place <= set(v.split()) for v in variants), variants
