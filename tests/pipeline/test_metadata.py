"""Metadata partitions -> key, url, caption with stable, dot-free keys."""

import pandas as pd
import pytest

from pipeline.metadata import (
    MetadataConfig,
    MetadataError,
    check_metadata_path,
    make_key,
    normalise_partition,
    resolve_format,
)


def test_keys_are_stable_digits_without_dots():
    frame = pd.DataFrame({"URL": ["u1", "u2"], "text": ["c1", "c2"], "filename": ["f1", "f2"]})
    config = MetadataConfig(path="x.csv", url_col="URL", caption_col="text", keep_columns=["filename"])
    out = normalise_partition(frame, 3, config)
    assert list(out.columns) == ["key", "url", "caption", "filename"]
    assert list(out["key"]) == ["000030000000", "000030000001"]
    assert out.equals(normalise_partition(frame, 3, config))
    assert all("." not in k for k in out["key"])


def test_key_overflow_names_the_fix():
    with pytest.raises(MetadataError, match="blocksize"):
        make_key(0, 10**7)


def test_missing_columns_are_named():
    frame = pd.DataFrame({"url": ["u"], "title": ["t"]})
    with pytest.raises(MetadataError, match=r"\['caption'\].*caption_col"):
        normalise_partition(frame, 0, MetadataConfig(path="m.parquet"))


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [("a/yfcc15m_clean_open_data.json", "auto", "jsonl"), ("m.parquet", "auto", "parquet"),
     ("m.tsv.gz", "auto", "tsv"), ("m.csv", "auto", "csv"), ("whatever", "yfcc15m_v2", "jsonl"),
     ("m.txt", "tsv", "tsv")],
)
def test_resolve_format(path, fmt, expected):
    assert resolve_format(MetadataConfig(path=path, format=fmt)) == expected


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(MetadataError, match="metadata.format"):
        resolve_format(MetadataConfig(path="m.bin"))
    with pytest.raises(MetadataError, match="yfcc15m_clean_open_data.json"):
        check_metadata_path(MetadataConfig(path=str(tmp_path / "nope.json")))
