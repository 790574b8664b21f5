"""Row filters over pandas partitions: caption cleaning, word bounds, URL safety, URL dedup.

Every function is pure. A partition carries a ``status`` column: ``"kept"`` until a filter
rejects the row, then the filter's status name (one per row, the first filter that fails
wins). ``reason`` holds a detail for the stats (e.g. which URL rule failed).
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from pipeline.charset import latin_share
from pipeline.metadata import ERROR_COLUMN, OFFSET_COLUMN, reject_reason

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


# ---------------------------------------------------------------- URL safety

_IPV4_PART = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


def _ipv4_part(text: str) -> int:
    if text.startswith("0x"):
        return int(text, 16)
    return int(text, 8) if text.startswith("0") and len(text) > 1 else int(text)


def parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """Parse IPv4 the way ``inet_aton`` does: ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``.

    Browsers and libc accept these short, decimal, octal and hex forms, so a guard that only
    knows dotted quads is easy to walk around.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(p) for p in parts):
        return None
    try:
        values = [_ipv4_part(p) for p in parts]
    except ValueError:  # "0x" alone
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


_NOT_IN_HOST = frozenset("/\\@#? \t\r\n")
_UNICODE_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def normalise_host(host: str) -> str | None:
    """The host name the HTTP client really resolves, or None when it has none.

    urllib percent-decodes the host and the resolver IDNA-encodes it, which maps fullwidth
    digits to ASCII (NFKC) and ideographic dots to dots: ``127.0.0.%31``, ``１２７.0.0.1`` and
    ``127。0。0。1`` all reach 127.0.0.1.
    """
    text = unquote(host, errors="strict").translate(_UNICODE_DOTS)
    text = unicodedata.normalize("NFKC", text).translate(_UNICODE_DOTS).strip("[]").lower().rstrip(".")
    if not text or any(c in _NOT_IN_HOST for c in text) or ("%" in text and ":" not in text):
        return None  # '%' only as an IPv6 zone separator
    if text.isascii():
        return text
    try:
        return text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a literal host names (IPv4 embedded in IPv6 unwrapped), or None for a DNS name."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return parse_ipv4_literal(host)
    return embedded_ipv4(address)


def embedded_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), else ``address``."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    number = int(address)
    if number >> 32 == 0 and number > 1:  # ::a.b.c.d (deprecated IPv4-compatible form)
        return ipaddress.IPv4Address(number & 0xFFFFFFFF)
    if address in _NAT64:
        return ipaddress.IPv4Address(number & 0xFFFFFFFF)
    return address


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local (cloud metadata), multicast, reserved, unspecified or
    site-local (the deprecated fec0::/10, still routed inside some networks)."""
    address = embedded_ipv4(address)
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)  # fec0::/10
    )


_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not "private" to ipaddress


def parse_allow_hosts(entries: list[str]) -> frozenset[tuple[str, int | None]]:
    """``["127.0.0.1:8000", "localhost", "[::1]:9000"]`` -> {(normalised host, port or None)}."""
    allowed = set()
    for entry in entries:
        parts = urlsplit(f"//{entry}")
        host = normalise_host(parts.hostname or "")
        try:
            port = parts.port
        except ValueError:
            host = None
        if not host:
            raise ValueError(f"filters.allow_hosts entry {entry!r} is not host or host:port")
        allowed.add((host, port))
    return frozenset(allowed)


def is_allowed(host: str, port: int, allowed: frozenset[tuple[str, int | None]]) -> bool:
    """``host`` (normalised) and ``port`` match an allow-list entry, spelled the same way."""
    return (host, port) in allowed or (host, None) in allowed


def host_problem(host: str) -> str | None:
    """``local_host`` when the (normalised) host is ``localhost`` or a local literal address."""
    if host == "localhost" or host.endswith(".localhost"):
        return "local_host"
    address = host_address(host)
    if address is not None and is_local_address(address):
        return "local_host"
    return None


def url_problem(url: object, allowed: frozenset[tuple[str, int | None]] = frozenset()) -> str | None:
    """Why ``url`` must not be fetched (``scheme``, ``credentials``, ``local_host``, ``invalid``), or None.

    The host is normalised as the HTTP client will (:func:`normalise_host`); local literal
    hosts (every IPv4 spelling ``inet_aton`` accepts, IPv4 inside IPv6) and ``localhost`` are
    refused unless listed in ``allowed`` as the same name (and port). Names are not resolved
    here: the downloader resolves them and checks every address at connect time.
    """
    if not isinstance(url, str) or not url.strip():
        return "invalid"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = normalise_host(parts.hostname or "")
    except (ValueError, UnicodeError):
        return "invalid"
    if parts.scheme.lower() not in ("http", "https"):
        return "scheme"
    if parts.username is not None or parts.password is not None:
        return "credentials"
    if not host:
        return "invalid"
    default_port = 443 if parts.scheme.lower() == "https" else 80
    if is_allowed(host, port or default_port, allowed):
        return None
    return host_problem(host)


# ---------------------------------------------------------------- partition functions


def apply_filters(df: pd.DataFrame, config: FilterConfig) -> pd.DataFrame:
    """Clean captions and set ``status``/``reason`` on a ``key, url, caption`` partition.

    Adds ``original_caption``; ``caption`` becomes the cleaned text. Rows with a
    ``row_error`` (see :func:`pipeline.metadata.normalise_partition`) become ``bad_row`` with the
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
