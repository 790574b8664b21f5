"""Row filters over pandas partitions: caption cleaning, word bounds, URL safety, URL dedup.

Every function is pure. A partition carries a ``status`` column: ``"kept"`` until a filter
rejects the row, then the filter's status name (one per row, the first filter that fails
wins). ``reason`` holds a detail for the stats (e.g. which URL rule of
:func:`pipeline.urlguard.url_problem` failed).
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np
import pandas as pd

from pipeline.charset import latin_share
from pipeline.metadata import ERROR_COLUMN, OFFSET_COLUMN
from pipeline.metadata_rows import reject_reason
from pipeline.urlguard import parse_allow_hosts, url_problem

KEPT = "kept"
BAD_ROW = "bad_row"
EMPTY_CAPTION = "empty_caption"
TOO_FEW_WORDS = "too_few_words"
TOO_MANY_WORDS = "too_many_words"
UNSAFE_URL = "unsafe_url"
DUPLICATE_URL = "duplicate_url"
NON_LATIN_CAPTION = "non_latin_caption"
FILTER_STATUSES = (BAD_ROW, UNSAFE_URL, EMPTY_CAPTION, TOO_FEW_WORDS, TOO_MANY_WORDS, NON_LATIN_CAPTION, DUPLICATE_URL)


@dataclass
class FilterConfig:
    """Which rows reach the downloader.

    ``allow_hosts`` lists ``host`` or ``host:port`` entries (``127.0.0.1:8000``, ``[::1]``)
    that may be fetched even though they are loopback/private literals; nothing else local is.
    ``max_words`` 0 means no upper bound.
    """

    min_words: int = 1  # captions with fewer words are too_few_words
    max_words: int = 0  # captions with more words are too_many_words (0: no bound)
    #: captions with a smaller share of Latin letters are non_latin_caption (0: off)
    min_latin_share: float = 0.0
    dedup_urls: bool = True  # keep only the first row of each exact URL
    #: local host[:port] entries that may be fetched
    allow_hosts: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- captions

_TAG = re.compile(r"<[^>]*>")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_PLUS_BETWEEN_WORDS = re.compile(r"(?<=\w)\+(?=\w)")
_SPACES = re.compile(r"\s+")


def clean_caption(text: object) -> str:
    """Flickr-style title/description to plain text.

    ``+`` between words and ``%XX`` escapes are decoded (Flickr titles are often URL-encoded),
    HTML entities unescaped (twice: ``&amp;amp;`` is common), tags removed, whitespace collapsed.
    """
    if not isinstance(text, str):
        return ""
    text = _PLUS_BETWEEN_WORDS.sub(" ", text)
    if _PERCENT.search(text):
        text = unquote(text, errors="replace")
    text = html.unescape(html.unescape(text))
    text = _TAG.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def word_count(text: str) -> int:
    return len(text.split())


def caption_status(text: str, min_words: int, max_words: int, min_latin_share: float = 0.0) -> str:
    """Status of a cleaned caption under the word bounds and the script filter."""
    words = word_count(text)
    if words == 0:
        return EMPTY_CAPTION
    if words < min_words:
        return TOO_FEW_WORDS
    if max_words and words > max_words:
        return TOO_MANY_WORDS
    if min_latin_share and latin_share(text) < min_latin_share:
        return NON_LATIN_CAPTION
    return KEPT


# ---------------------------------------------------------------- partition functions


def apply_filters(df: pd.DataFrame, config: FilterConfig) -> pd.DataFrame:
    """Clean captions and set ``status``/``reason`` on a ``key, url, caption`` partition.

    Adds ``original_caption``; ``caption`` becomes the cleaned text. Rows with a
    ``row_error`` (see :func:`pipeline.metadata_rows.normalise_partition`) become ``bad_row`` with the
    error (and its byte offset) as reason. Duplicate URLs are not marked here (they need the
    whole input): see :func:`first_occurrence` and :func:`mark_duplicates`.
    """
    out = df.drop(columns=[ERROR_COLUMN, OFFSET_COLUMN], errors="ignore")
    out["original_caption"] = out["caption"].astype(object)
    out["caption"] = [clean_caption(c) for c in out["original_caption"]]
    allowed = parse_allow_hosts(config.allow_hosts)
    problems = [url_problem(u, allowed) for u in out["url"]]
    out["url"] = [u.strip() if isinstance(u, str) else "" for u in out["url"]]
    statuses = [caption_status(c, config.min_words, config.max_words, config.min_latin_share) for c in out["caption"]]
    out["status"] = [UNSAFE_URL if p else s for p, s in zip(problems, statuses)]
    out["reason"] = [p or "" for p in problems]
    if ERROR_COLUMN in df.columns:
        _mark_bad_rows(out, df[ERROR_COLUMN].to_numpy(dtype=object), df[OFFSET_COLUMN].to_numpy())
    return out


def _mark_bad_rows(out: pd.DataFrame, errors: np.ndarray, offsets: np.ndarray) -> None:
    bad = np.flatnonzero(errors != "")
    out.iloc[bad, out.columns.get_loc("status")] = BAD_ROW
    out.iloc[bad, out.columns.get_loc("reason")] = [reject_reason(errors[i], int(offsets[i])) for i in bad]


def url_digests(urls: pd.Series) -> np.ndarray:
    """64-bit BLAKE2b digest of each URL (exact string match; collisions ~1e-8 at 15M rows)."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little") for u in urls],
        dtype=np.uint64,
    )


def first_occurrence(digests: list[np.ndarray]) -> list[np.ndarray]:
    """Per partition, a boolean mask that is False where the URL already appeared earlier.

    ``digests`` are the candidate rows' digests, partition by partition, in input order: the
    first row with a URL (by partition, then row) wins.
    """
    sizes = [len(d) for d in digests]
    flat = np.concatenate(digests) if digests else np.zeros(0, np.uint64)
    keep = np.zeros(len(flat), dtype=bool)
    if len(flat):
        _, first = np.unique(flat, return_index=True)
        keep[first] = True
    return np.split(keep, np.cumsum(sizes)[:-1]) if sizes else []


def mark_duplicates(df: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """Set ``duplicate_url`` on the kept rows whose flag in ``keep`` (one per kept row) is False."""
    out = df.copy()
    kept = np.flatnonzero(out["status"].to_numpy() == KEPT)
    if len(kept) != len(keep):
        raise ValueError(f"duplicate mask has {len(keep)} entries for {len(kept)} kept rows")
    column = out.columns.get_loc("status")
    out.iloc[kept[~keep], column] = DUPLICATE_URL
    return out


def count_statuses(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in df["status"].value_counts().items()}
