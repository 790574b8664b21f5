"""Non-English captions by script: Latin-letter share, a filter status, the rejects message."""

import pandas as pd
import pytest

from pipeline import filters, outcomes
from pipeline.charset import latin_share
from pipeline.filters import FilterConfig


@pytest.mark.parametrize(
    "text, share",
    [
        ("a brown dog", 1.0),
        ("café au lait", 1.0),
        ("一只棕色的狗", 0.0),
        ("собака", 0.0),
        ("a dog 在海滩上", 0.5),
        ("123 !!", 0.0),
    ],
)
def test_latin_share(text, share):
    assert latin_share(text) == pytest.approx(share)


def test_script_filter_is_off_by_default_and_counts_its_rows():
    rows = pd.DataFrame(
        {
            "key": ["0", "1", "2"],
            "url": [f"http://example.com/{i}.jpg" for i in range(3)],
            "caption": ["a brown dog on the beach", "一只 棕色的狗 在海滩上", "собака на пляже"],
        }
    )
    assert list(filters.apply_filters(rows, FilterConfig())["status"]) == ["kept"] * 3
    config = FilterConfig(min_latin_share=0.5)
    out = filters.apply_filters(rows, config)
    assert list(out["status"]) == ["kept", filters.NON_LATIN_CAPTION, filters.NON_LATIN_CAPTION]
    message = outcomes.filter_error(filters.NON_LATIN_CAPTION, "", out["caption"][1], config)
    assert message == "0% Latin letters; filters.min_latin_share is 0.5"
