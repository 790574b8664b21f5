"""Caption variants: deterministic in the sample key, different from the caption."""

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
