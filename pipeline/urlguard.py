"""Which URLs, hosts and addresses a download may reach: the one guard of the crawler.

Two checks. :func:`url_problem`, on every metadata row before anything is fetched: http(s)
only, no credentials, no local host (``localhost``, a loopback, private, link-local... literal
in any spelling the HTTP client accepts, IPv4 inside IPv6 too) unless ``filters.allow_hosts``
names it. :func:`guarded_opener`, on every connection of a download (the first hop and each
redirect): the host is resolved, every address it resolves to is checked, and the socket
connects only to an address it has just checked, so DNS rebinding cannot slip in between.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import unicodedata
import urllib.error
import urllib.request
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from pipeline import deadline
from pipeline.base.configs import ConfigError

# ---------------------------------------------------------------- URL and host checks (pure)

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
            raise ConfigError(f"filters.allow_hosts entry {entry!r} is not host or host:port")
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


# ---------------------------------------------------------------- resolve, check, connect


class BlockedAddress(OSError):
    """A connection to a local address that the allow-list does not name."""


def check_addresses(host: str, port: int, allowed: frozenset) -> list[tuple]:
    """``getaddrinfo`` results for ``host``; :class:`BlockedAddress` when any is local and the
    host is not allow-listed (a name that resolves to 169.254.169.254 is refused)."""
    name = normalise_host(host)
    if name is None:
        raise BlockedAddress(f"invalid host {host!r}")
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    if is_allowed(name, port, allowed):
        return infos
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if is_local_address(address):
            raise BlockedAddress(f"refused: {host} resolves to local address {address}")
    return infos


def guarded_connection(allowed: frozenset):
    """A ``socket.create_connection`` that connects only to addresses it has just checked
    (so DNS rebinding between the URL check and the connect does not get through)."""

    def create_connection(address, timeout=None, source_address=None, **_):
        host, port = address
        timeout = timeout if isinstance(timeout, int | float) else None  # None: no socket timeout
        budget = deadline.current()
        if budget is not None:
            timeout = min(timeout or budget.remaining(), budget.remaining())
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, sockaddr in check_addresses(host, port, allowed):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
            except OSError as err:
                sock.close()
                error = err
                continue
            if budget is not None:
                budget.watch(sock)
            return sock
        raise error

    return create_connection


class _GuardedHTTP(http.client.HTTPConnection):
    allowed: frozenset = frozenset()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_connection(self.allowed)


class _GuardedHTTPS(http.client.HTTPSConnection):
    allowed: frozenset = frozenset()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_connection(self.allowed)


class GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allowed: frozenset):
        super().__init__()
        self.connection = type("GuardedHTTP", (_GuardedHTTP,), {"allowed": allowed})

    def http_open(self, req):
        return self.do_open(self.connection, req)


class GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allowed: frozenset):
        super().__init__()
        self.connection = type("GuardedHTTPS", (_GuardedHTTPS,), {"allowed": allowed})

    def https_open(self, req):
        return self.do_open(self.connection, req, context=self._context)


class GuardedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only when its target passes :func:`url_problem`
    (its connection is then checked like the first one)."""

    def __init__(self, allow_hosts: frozenset):
        super().__init__()
        self.allowed = allow_hosts

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        problem = url_problem(newurl, self.allowed)
        if problem:
            raise urllib.error.HTTPError(newurl, code, f"redirect refused ({problem})", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@lru_cache(maxsize=16)
def allowed_hosts(allow_hosts: tuple[str, ...]) -> frozenset:
    """:func:`parse_allow_hosts` of ``filters.allow_hosts``, parsed once per process."""
    return parse_allow_hosts(list(allow_hosts))


@lru_cache(maxsize=16)
def guarded_opener(allow_hosts: tuple[str, ...]) -> urllib.request.OpenerDirector:
    """Direct connections only (proxy variables are ignored: every address must be checked)."""
    allowed = allowed_hosts(allow_hosts)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        GuardedHTTPHandler(allowed),
        GuardedHTTPSHandler(allowed),
        GuardedRedirects(allowed),
    )
