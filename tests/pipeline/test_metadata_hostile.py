"""Hostile metadata lines are counted bad rows, never a failed build: deep nesting, lone
surrogates, huge integers, non-text fields, over-long lines (read in bounded chunks)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pandas as pd
import pytest

from pipeline import filters, metadata, metadata_rows
from pipeline.metadata import MetadataConfig, MetadataError, check_metadata_path
from pipeline.metadata_rows import normalise_partition

GOOD = [
    {"url": f"http://example.com/{i}.jpg", "caption": f"photo number {i}", "filename": f"{i}.jpg"} for i in range(4)
]
HOSTILE = [
    b"[" * 100_000 + b"]" * 100_000,  # RecursionError before
    b'{"url": "http://example.com/s.jpg", "caption": "bad \\ud800 text"}',  # lone surrogate caption
    b'{"url": "http://example.com/\\udfff.jpg", "caption": "a surrogate url"}',
    b'{"url": "http://example.com/i.jpg", "caption": "big", "n": ' + b"7" * 5000 + b"}",
    b'{"url": "http://example.com/d.jpg", "caption": "deep", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    b'{"url": {"a": 1}, "caption": "url is an object"}',
    b'{"url": "http://example.com/c.jpg", "caption": null}',
]


def line(row: dict) -> bytes:
    return json.dumps(row).encode()


def read_all(path, config, blocksize=1 << 20) -> pd.DataFrame:
    frames = [
        normalise_partition(metadata.read_block(b), b.index, config)
        for b in metadata.plan_blocks(str(path), "jsonl", blocksize, config)
    ]
    return pd.concat([filters.apply_filters(f, filters.FilterConfig()) for f in frames], ignore_index=True)


@pytest.fixture
def hostile(tmp_path):
    rows = [
        line(GOOD[0]),
        *HOSTILE,
        b'{"url": "http://example.com/long.jpg", "caption": "' + b"a" * 400_000 + b'"}',
        line(GOOD[1]),
        line({**GOOD[2], "filename": 12}),
        line({**GOOD[3], "filename": ["x", 1]}),
    ]
    path = tmp_path / "meta.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def test_every_hostile_line_is_one_bad_row_and_the_rest_is_read(hostile, tmp_path):
    config = MetadataConfig(path=str(hostile), keep_columns=["filename"], max_line_bytes=300_000)
    out = read_all(hostile, config)
    statuses = list(out["status"])
    assert statuses == ["kept", *["bad_row"] * 6, "empty_caption", "bad_row", "kept", "kept", "kept"]
    reasons = list(out.loc[out["status"] == "bad_row", "reason"])
    assert reasons[0].startswith("JSON nested 100000 deep")
    assert reasons[1].startswith("caption holds a lone surrogate (\\ud800)")
    assert reasons[2].startswith("url holds a lone surrogate (\\udfff)")
    assert reasons[3].startswith("invalid JSON (Exceeds the limit")
    assert reasons[4].startswith("JSON nested 41 deep")
    assert reasons[5].startswith("url is a dict, not text")
    assert reasons[6].startswith("line longer than metadata.max_line_bytes")
    assert list(out["filename"].iloc[-2:]) == ["12", '["x", 1]']  # kept columns become text
    out.to_parquet(tmp_path / "rows.parquet")  # surrogates never reach parquet
    for blocksize in (4096, 150_000):  # block edges inside the long and deep lines
        assert list(read_all(hostile, config, blocksize)["status"]) == statuses


def test_json_depth_is_counted_outside_strings():
    assert metadata.json_depth('{"a": "[[[[[[[[[["}', 2) == 1
    assert metadata.json_depth('[[["]]]"]]]', 1) == 3
    assert metadata.json_depth("[]" * 50, 10) == 1


def test_keep_text():
    assert metadata_rows.keep_text("a\ud800b") == "a\ufffdb"
    assert metadata_rows.keep_text(None) is None and metadata_rows.keep_text(float("nan")) is None
    assert metadata_rows.keep_text(10**30) == str(10**30) and metadata_rows.keep_text({"k": [1]}) == '{"k": [1]}'


PEAK = """
import resource, sys
from pipeline.metadata import MetadataConfig, MetadataError, check_metadata_path
try:
    check_metadata_path(MetadataConfig(path=sys.argv[1]))
    print("accepted")
except MetadataError as err:
    print("refused:", err)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak(path) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    verdict, kb = done.stdout.strip().splitlines()
    return verdict, int(kb)


@pytest.mark.timeout(150)
def test_a_huge_line_in_a_small_gz_is_refused_in_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as out:
        out.write(b'{"url": "http://example.com/a.jpg", "caption": "')
        chunk = b"a" * (1 << 20)
        for _ in range(96):  # one 96 MiB line
            out.write(chunk)
        out.write(b'"}\n')
    normal = tmp_path / "normal.jsonl.gz"
    normal.write_bytes(gzip.compress(b"\n".join(line(g) for g in GOOD) + b"\n"))
    verdict, peak_kb = _peak(bomb)
    ok, normal_kb = _peak(normal)
    assert ok == "accepted"
    assert verdict.startswith("refused:") and "longer than metadata.max_line_bytes" in verdict
    assert peak_kb < normal_kb + 24 * 1024  # reading the line whole would add 96-290 MiB


def test_an_over_long_csv_header_is_one_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"url," + b"c" * 3000 + b"\nhttp://e.com/a.jpg,x\n")
    with pytest.raises(MetadataError, match="longer than metadata.max_line_bytes"):
        check_metadata_path(MetadataConfig(path=str(path), max_line_bytes=1024))
