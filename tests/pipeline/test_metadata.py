"""Metadata partitions -> key, url, caption with stable, dot-free keys; bad lines, gzip."""

import gzip
import json

import pandas as pd
import pytest

from pipeline import filters, metadata, metadata_rows
from pipeline.metadata import MetadataConfig, MetadataError, check_metadata_path, resolve_format
from pipeline.metadata_rows import make_key, normalise_partition


def test_keys_are_stable_digits_without_dots():
    frame = pd.DataFrame({"URL": ["u1", "u2"], "text": ["c1", "c2"], "filename": ["f1", "f2"]})
    config = MetadataConfig(path="x.csv", url_col="URL", caption_col="text", keep_columns=["filename"])
    out = normalise_partition(frame, 3, config)
    assert list(out.columns) == ["key", "url", "caption", "filename", "row_error", "row_offset"]
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
    [
        ("a/yfcc15m_clean_open_data.json", "auto", "jsonl"),
        ("m.parquet", "auto", "parquet"),
        ("m.tsv.gz", "auto", "tsv"),
        ("m.csv", "auto", "csv"),
        ("whatever", "yfcc15m_v2", "jsonl"),
        ("m.txt", "tsv", "tsv"),
    ],
)
def test_resolve_format(path, fmt, expected):
    assert resolve_format(MetadataConfig(path=path, format=fmt)) == expected


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(MetadataError, match="metadata.format"):
        resolve_format(MetadataConfig(path="m.bin"))
    with pytest.raises(MetadataError, match="yfcc15m_clean_open_data.json"):
        check_metadata_path(MetadataConfig(path=str(tmp_path / "nope.json")))


GOOD = [{"url": f"http://example.com/{i}.jpg", "caption": f"photo {i}", "filename": f"{i}.jpg"} for i in range(6)]


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def read_all(path, fmt, blocksize=1 << 20, config=None):
    """Every block through the same functions the build runs: normalise, then filter."""
    config = config or MetadataConfig(path=str(path), keep_columns=["filename"])
    frames = [
        normalise_partition(metadata.read_block(b), b.index, config)
        for b in metadata.plan_blocks(str(path), fmt, blocksize)
    ]
    return pd.concat([filters.apply_filters(f, filters.FilterConfig()) for f in frames], ignore_index=True)


@pytest.fixture
def hostile(tmp_path):
    """Good rows around a broken JSON line, a non-UTF-8 line, a list, and non-text captions."""
    lines = [
        jsonl(GOOD[:2]),
        b'{"url": "http://example.com/x.jpg", "caption": \n',
        b'{"url": "http://example.com/y.jpg", "caption": "caf\xe9"}\n',
        b"[1, 2]\n",
        jsonl(
            [
                {"url": "http://example.com/n.jpg", "caption": 42, "filename": "n"},
                {"url": "http://example.com/l.jpg", "caption": ["a", "b"], "filename": "l"},
            ]
        ),
        b"\n",
        jsonl(GOOD[2:]),
    ]
    path = tmp_path / "meta.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def test_bad_rows_are_counted_and_the_rest_kept(hostile):
    out = read_all(hostile, "jsonl")
    assert list(out["status"]) == ["kept"] * 2 + ["bad_row"] * 5 + ["kept"] * 4
    reasons = list(out.loc[out["status"] == "bad_row", "reason"])
    assert reasons[0].startswith("invalid JSON") and reasons[1].startswith("not UTF-8")
    assert reasons[2].startswith("a JSON list") and reasons[3].startswith("caption is a int")
    assert reasons[4].startswith("caption is a list")
    assert set(out.loc[out["status"] == "kept", "caption"]) == {g["caption"] for g in GOOD}


def test_blocks_read_every_line_once(hostile):
    whole = read_all(hostile, "jsonl")
    for blocksize in (1, 7, 40, 100):
        pieces = read_all(hostile, "jsonl", blocksize)
        assert list(pieces["status"]) == list(whole["status"])
        assert list(pieces["url"]) == list(whole["url"])


def test_rejects_file_names_file_line_and_error(hostile, tmp_path):
    out = read_all(hostile, "jsonl")
    bad = out[out["status"] == "bad_row"]
    assert metadata_rows.write_rejects(tmp_path, hostile, [bad]) == 5
    rejects = [json.loads(line) for line in (tmp_path / metadata_rows.REJECTS_FILE).read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3, 4, 5, 6, 7]
    assert rejects[0]["file"] == str(hostile) and rejects[0]["text"].startswith('{"url": "http://example.com/x.jpg"')
    assert rejects[2]["error"] == "a JSON list, not an object" and rejects[2]["text"] == "[1, 2]"
    assert metadata_rows.write_rejects(tmp_path, hostile, []) == 0
    assert not (tmp_path / metadata_rows.REJECTS_FILE).exists()


@pytest.mark.parametrize("name", ["meta.json.gz", "meta.jsonl.gz", "meta.csv.gz", "meta.tsv.gz"])
def test_gzipped_metadata_reads_like_plain(tmp_path, name):
    fmt = resolve_format(MetadataConfig(path=name))
    if fmt == "jsonl":
        raw = jsonl(GOOD)
    else:
        sep = "," if fmt == "csv" else "\t"
        raw = (
            "".join(
                sep.join(row) + "\n"
                for row in [["url", "caption", "filename"], *[[g["url"], g["caption"], g["filename"]] for g in GOOD]]
            )
        ).encode()
    (tmp_path / name).write_bytes(gzip.compress(raw))
    (tmp_path / "plain").write_bytes(raw)
    config = MetadataConfig(path=str(tmp_path / name), keep_columns=["filename"])
    assert check_metadata_path(config) == tmp_path / name
    packed = read_all(tmp_path / name, fmt, 50, config)
    plain = read_all(tmp_path / "plain", fmt, 50, config)
    assert packed.equals(plain) and list(packed["status"]) == ["kept"] * 6
    assert list(packed["filename"]) == [g["filename"] for g in GOOD]


def test_csv_rows_with_the_wrong_field_count_are_bad(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "url,caption\nhttp://e.com/1.jpg,one\nhttp://e.com/2.jpg\nhttp://e.com/3.jpg,three,extra\n"
        'http://e.com/4.jpg,"four, quoted"\n'
    )
    out = read_all(path, "csv", config=MetadataConfig(path=str(path)))
    assert list(out["status"]) == ["kept", "bad_row", "bad_row", "kept"]
    assert out.loc[1, "reason"].startswith("1 fields where the header has 2")
    assert out.loc[3, "caption"] == "four, quoted"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (gzip.compress(b""), "is empty"),
        (jsonl([{"link": "u", "caption": "c"}]), r"\['url'\] not found"),
        (b"not json at all\n", "no readable row"),
    ],
)
def test_unusable_files_fail_up_front(tmp_path, content, message):
    path = tmp_path / "m.jsonl"
    path.write_bytes(content)
    with pytest.raises(MetadataError, match=message):
        check_metadata_path(MetadataConfig(path=str(path)))
