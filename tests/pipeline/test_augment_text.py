"""Caption variants: deterministic in the sample key, different from the caption and each other."""

import os
from pathlib import Path

import pandas as pd
import pytest

from pipeline.augment_text import (
    AugmentConfig,
    augment_partition,
    caption_variants,
    check_config,
    textblob_pos_tag,
)

CAPTION = "a brown dog running on the sandy beach at sunset"
FAST = AugmentConfig(variants=4, methods=("swap", "delete"))


def test_variants_are_deterministic_and_differ():
    first = caption_variants("000000000001", CAPTION, FAST)
    assert first == caption_variants("000000000001", CAPTION, FAST)
    assert len(first) == 4 and all(v != CAPTION for v in first)
    assert sorted(first[0].split()) == sorted(CAPTION.split())  # swap keeps the words
    assert len(first[1].split()) < len(CAPTION.split())  # delete drops some
    assert caption_variants("000000000002", CAPTION, FAST) != first


def test_seed_and_count():
    other = AugmentConfig(variants=4, methods=("swap", "delete"), seed=1)
    assert caption_variants("k", CAPTION, other) != caption_variants("k", CAPTION, FAST)
    assert caption_variants("k", CAPTION, AugmentConfig(variants=0, methods=("swap",))) == []


def test_augment_partition_columns():
    frame = pd.DataFrame({"key": ["1", "2"], "caption": [CAPTION, "red car near the old church"]})
    out = augment_partition(frame, AugmentConfig(variants=2, methods=("delete",)))
    assert list(out.columns) == ["key", "variants"] and [len(v) for v in out["variants"]] == [2, 2]


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="synonym"):
        check_config(AugmentConfig(methods=("shuffle",)))


def test_textblob_tagger_keeps_token_alignment():
    tokens = ["a", "dog's", "run", "/", "on", "New-York", "beach"]
    tagged = textblob_pos_tag(tokens)
    assert [t for t, _ in tagged] == tokens and all(tag for _, tag in tagged)


@pytest.mark.slow
def test_synonym_variants_offline():
    config = AugmentConfig(variants=3, methods=("synonym",))
    variants = caption_variants("7", CAPTION, config)
    assert variants == caption_variants("7", CAPTION, config)
    assert all(v != CAPTION and len(v.split()) >= len(CAPTION.split()) for v in variants)


def test_variants_ignore_other_users_of_global_random():
    import random
    import threading

    import numpy as np

    expected = caption_variants("9", CAPTION, FAST)
    stop = threading.Event()

    def noise():
        while not stop.is_set():
            random.random()
            np.random.random()

    thread = threading.Thread(target=noise)
    thread.start()
    try:
        assert all(caption_variants("9", CAPTION, FAST) == expected for _ in range(300))
    finally:
        stop.set()
        thread.join()


DEFAULT = AugmentConfig()  # 4 variants, [synonym, swap, delete]
CORPUS = [
    line for line in (Path(__file__).resolve().parents[2] / "bench/data/captions.txt").read_text().splitlines() if line
][:80]


def test_variants_are_distinct_over_a_caption_corpus():
    total = 0
    for i, caption in enumerate(CORPUS):
        variants = caption_variants(str(i), caption, DEFAULT)
        assert len(set(variants)) == len(variants) and caption not in variants, (caption, variants)
        total += len(variants)
    assert total == 4 * len(CORPUS)  # these captions all allow four


def test_second_round_of_a_method_is_not_a_repeat():
    for i, caption in enumerate(CORPUS[:30]):
        variants = caption_variants(str(i), caption, DEFAULT)
        assert variants[3] not in variants[:3]  # the synonym round again: chained with swap first


@pytest.mark.parametrize(
    "caption",
    [
        "white square on a red background",
        "is there a cat on the mat",
        "Is there a cat on the mat",
        "A dog in New York",
        "two dogs",
    ],
)
def test_swap_changes_no_word_case(caption):
    variants = caption_variants("3", caption, AugmentConfig(variants=4, methods=("swap",)))
    for variant in variants:
        assert sorted(variant.split()) == sorted(caption.split())  # same words, same case
        assert variant.split()[0] == caption.split()[0]
    assert len(variants) == (0 if caption == "two dogs" else len(set(variants)))


@pytest.mark.parametrize(
    "caption", ["一只棕色的狗在海滩上奔跑", "коричневая собака бежит по пляжу", "猫 が ソファ で 寝て いる"]
)
def test_captions_the_augmenters_cannot_read_get_no_variants(caption):
    assert caption_variants("1", caption, DEFAULT) == []
    assert caption_variants("1", caption, AugmentConfig(methods=("swap", "delete"))) == []


def test_latin_share_threshold_is_a_setting():
    mixed = "a dog 在海滩上"  # 4 Latin letters of 8
    assert caption_variants("1", mixed, AugmentConfig(methods=("swap",), min_latin_share=0.9)) == []
    assert caption_variants("1", mixed, AugmentConfig(methods=("swap",), min_latin_share=0.5))
    with pytest.raises(ValueError, match="min_latin_share"):
        check_config(AugmentConfig(min_latin_share=1.5))


WORDNET_PROBE = """
import pandas as pd
from pipeline.augment_text import AugmentConfig, augment_partition
rows = pd.DataFrame({"key": ["1"], "caption": ["a brown dog running on the beach"]})
assert augment_partition(rows, AugmentConfig(variants=0))["variants"][0] == []
assert len(augment_partition(rows, AugmentConfig(variants=2))["variants"][0]) == 2  # synonym, swap
from pipeline.wordnet_data import english_wordnet
print(english_wordnet.cache_info().currsize)
try:
    augment_partition(rows, AugmentConfig(variants=1))
except Exception as err:
    print(type(err).__name__, err)
"""


@pytest.mark.timeout(120)
def test_wordnet_is_loaded_only_for_a_synonym_variant(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "NLTK_DATA": str(tmp_path)}  # no WordNet there
    probe = WORDNET_PROBE.replace("AugmentConfig(variants=2)", "AugmentConfig(variants=2, methods=('swap', 'delete'))")
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, error = out.stdout.strip().splitlines()[-2:]
    assert loaded == "0"
    assert error.startswith("WordNetMissingError") and "provision_wordnet()" in error and "make setup" not in error
