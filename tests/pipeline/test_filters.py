"""Filters over pandas partitions: caption cleaning, word bounds, URL guard, dedup across partitions."""

import numpy as np
import pandas as pd
import pytest

from pipeline import filters, urlguard
from pipeline.filters import FilterConfig, clean_caption
from pipeline.urlguard import parse_allow_hosts, url_problem


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Lake+Tahoe+at+sunset", "Lake Tahoe at sunset"),
        ("My%20trip%20to%20Paris", "My trip to Paris"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("fish &amp;amp; chips", "fish & chips"),
        ("<b>bold</b> words<br/>here", "bold words here"),
        ("&lt;i&gt;italic&lt;/i&gt; title", "italic title"),
        ("  lots \n of\t space  ", "lots of space"),
        ("C++ and 1 + 1", "C++ and 1 + 1"),
        ("caf%C3%A9+au+lait", "café au lait"),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_caption_status_word_bounds():
    assert filters.caption_status("", 1, 0) == filters.EMPTY_CAPTION
    assert filters.caption_status("one", 2, 0) == filters.TOO_FEW_WORDS
    assert filters.caption_status("one two", 2, 0) == filters.KEPT
    assert filters.caption_status("one two three", 1, 2) == filters.TOO_MANY_WORDS
    assert filters.caption_status("one two", 1, 2) == filters.KEPT
    assert filters.caption_status(" ".join(["w"] * 500), 1, 0) == filters.KEPT  # 0 = no upper bound


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://127.1/a.jpg",
        "http://2130706433/a.jpg",
        "http://0x7f000001/a.jpg",
        "http://0177.0.0.1/a.jpg",
        "http://127.0.1/a.jpg",
        "http://[::1]/a.jpg",
        "http://[::ffff:127.0.0.1]/a.jpg",
        "http://localhost/a.jpg",
        "http://LOCALHOST.:8080/a.jpg",
        "http://foo.localhost/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://10.0.0.8/a.jpg",
        "http://10.255.1.1/a.jpg",
        "http://172.16.0.1/a.jpg",
        "http://172.31.255.254/a.jpg",
        "http://192.168.1.10/a.jpg",
        "http://169.254.169.254/latest",
        "http://[fe80::1]/a.jpg",
        "http://[fc00::1]/a.jpg",
        "http://224.0.0.1/a.jpg",
        "http://[ff02::1]/a.jpg",
        "http://0xa000001/a.jpg",
        "http://3232235777/a.jpg",
        "http://[fec0::1]/a.jpg",
        "http://[FEC0:0:0:1::5]:8080/a.jpg",
        "http://[feff:ffff::1]/a.jpg",
        "http://[fed0::1%25eth0]/a.jpg",
    ],
)
def test_url_guard_refuses_local_literals(url):
    assert url_problem(url) == "local_host"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/a.jpg", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("http://user:secret@example.com/a.jpg", "credentials"),
        ("http://user@example.com/a.jpg", "credentials"),
        ("http:///a.jpg", "invalid"),
        ("http://example.com:99999/a.jpg", "invalid"),
        ("", "invalid"),
        (None, "invalid"),
    ],
)
def test_url_guard_other_problems(url, problem):
    assert url_problem(url) == problem


@pytest.mark.parametrize(
    "url",
    [
        "http://farm4.staticflickr.com/1/2_b.jpg",
        "https://example.com/a.jpg",
        "http://8.8.8.8/a.jpg",
        "http://172.32.0.1/a.jpg",
        "http://11.0.0.1/x",
        "HTTPS://Example.COM/x",
    ],
)
def test_url_guard_accepts_public(url):
    assert url_problem(url) is None


def test_allow_list_is_exact_host_and_port():
    allowed = parse_allow_hosts(["127.0.0.1:8000", "[::1]"])
    assert url_problem("http://127.0.0.1:8000/a.jpg", allowed) is None
    assert url_problem("http://127.0.0.1:8001/a.jpg", allowed) == "local_host"
    assert url_problem("http://127.1:8000/a.jpg", allowed) == "local_host"  # other spelling
    assert url_problem("http://2130706433:8000/a.jpg", allowed) == "local_host"
    assert url_problem("http://[::1]:1234/a.jpg", allowed) is None  # bare host: any port
    assert url_problem("http://localhost:8000/a.jpg", allowed) == "local_host"
    assert url_problem("http://192.168.0.1:8000/a.jpg", allowed) == "local_host"
    with pytest.raises(ValueError, match="allow_hosts"):
        parse_allow_hosts([":80"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.%31:8000/a",
        "http://%31%32%37.0.0.1/a",
        "http://10.0.0.%38/a",
        "http://169.254.169.%32%35%34/latest",
        "http://\uff11\uff12\uff17.0.0.1/a",  # fullwidth digits
        "http://127\u30020\u30020\u30021/a",
        "http://192\uff0e168\uff0e0\uff0e1/a",  # ideographic dots
        "http://0x7f.0x0.0x0.0x1/a",
        "http://0x7F000001/a",
        "http://017700000001/a",
        "http://[::ffff:7f00:1]/a",
        "http://[::ffff:169.254.169.254]/a",
        "http://[::127.0.0.1]/a",
        "http://[2002:a9fe:a9fe::]/a",
        "http://[64:ff9b::a9fe:a9fe]/a",  # 6to4, NAT64
        "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/a",
        "http://LocalHost%2e/a",
        "http://100.64.0.1/a",
        "http://[fe80::1%25eth0]/a",
    ],
)
def test_url_guard_normalises_like_the_http_client(url):
    assert url_problem(url) == "local_host"


def test_normalise_host_forms():
    norm = urlguard.normalise_host
    assert norm("127.0.0.%31") == "127.0.0.1"
    assert norm("\uff11\uff12\uff17\u30020\uff0e0\uff611") == "127.0.0.1"
    assert norm("B\u00fccher.example.") == "xn--bcher-kva.example"
    assert norm("exa%mple.com") is None and norm("a%2fb") is None and norm("") is None
    with pytest.raises(UnicodeError):  # not UTF-8 once decoded: url_problem says "invalid"
        norm("%ff")
    assert url_problem("http://%ff/a.jpg") == "invalid"


def test_allow_list_matches_the_normalised_name():
    allowed = parse_allow_hosts(["127.0.0.1:8000"])
    assert url_problem("http://127.0.0.%31:8000/a.jpg", allowed) is None  # the same host, encoded
    assert url_problem("http://0x7f.0.0.1:8000/a.jpg", allowed) == "local_host"  # another spelling


def test_parse_ipv4_literal_forms():
    parse = urlguard.parse_ipv4_literal
    assert str(parse("127.1")) == "127.0.0.1"
    assert str(parse("2130706433")) == "127.0.0.1"
    assert str(parse("0x7f.1")) == "127.0.0.1"
    assert str(parse("0300.0250.1.1")) == "192.168.1.1"
    assert parse("256.1.1.1") is None
    assert parse("example.com") is None
    assert parse("1.2.3.4.5") is None


def _partition(rows):
    return pd.DataFrame(rows, columns=["key", "url", "caption"])


def test_apply_filters_sets_one_status_per_row():
    frame = _partition(
        [
            ("a", "http://example.com/1.jpg", "Red+car+at+night"),
            ("b", "http://127.1/2.jpg", "local photo"),
            ("c", "http://example.com/3.jpg", "<p></p>"),
            ("d", "http://example.com/4.jpg", "one"),
            ("e", "http://example.com/5.jpg", "a b c d e f"),
        ]
    )
    out = filters.apply_filters(frame, FilterConfig(min_words=2, max_words=5))
    assert list(out["status"]) == ["kept", "unsafe_url", "empty_caption", "too_few_words", "too_many_words"]
    assert list(out["reason"]) == ["", "local_host", "", "", ""]
    assert out.loc[0, "caption"] == "Red car at night"
    assert out.loc[0, "original_caption"] == "Red+car+at+night"
    assert list(frame["caption"])[0] == "Red+car+at+night"  # input left alone


def test_dedup_across_partitions_first_occurrence_wins():
    config = FilterConfig()
    part0 = filters.apply_filters(
        _partition(
            [
                ("00", "http://e.com/a.jpg", "first a"),
                ("01", "http://e.com/b.jpg", ""),
                ("02", "http://e.com/a.jpg", "second a"),
            ]
        ),
        config,
    )
    part1 = filters.apply_filters(
        _partition(
            [
                ("10", "http://e.com/b.jpg", "b with caption"),
                ("11", "http://e.com/a.jpg", "third a"),
                ("12", "http://e.com/c.jpg", "c"),
            ]
        ),
        config,
    )
    digests = [filters.url_digests(p.loc[p["status"] == "kept", "url"]) for p in (part0, part1)]
    keep = filters.first_occurrence(digests)
    assert [m.tolist() for m in keep] == [[True, False], [True, False, True]]
    out0, out1 = filters.mark_duplicates(part0, keep[0]), filters.mark_duplicates(part1, keep[1])
    assert list(out0["status"]) == ["kept", "empty_caption", "duplicate_url"]
    # b's first row had no caption, so the later row with a caption keeps the URL
    assert list(out1["status"]) == ["kept", "duplicate_url", "kept"]
    with pytest.raises(ValueError, match="kept rows"):
        filters.mark_duplicates(part0, np.ones(5, bool))


def test_first_occurrence_empty_partitions():
    keep = filters.first_occurrence([np.zeros(0, np.uint64), np.array([5, 5], np.uint64)])
    assert [m.tolist() for m in keep] == [[], [True, False]]
