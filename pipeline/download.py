"""Download one unit of rows with img2dataset's in-process classes (threads only).

A unit is a folder: ``images.bin`` (the resized JPEGs back to back), ``samples.parquet`` (one
row per input row: key, status, error, sizes, offset/length into images.bin) and ``_SUCCESS``,
written last. A unit without ``_SUCCESS`` is wiped and downloaded again; one with it is skipped.

img2dataset's ``download()`` cannot run inside a Dask worker (it installs a SIGINT handler and
forks processes), so its ``Downloader`` and ``Resizer`` are driven directly with a writer of
our own, and its fetch is replaced by :func:`fetch`: every connection (first hop and each
redirect) resolves the host, refuses local addresses that the allow-list does not name and
connects only to an address it checked; a download has one deadline and a byte cap; images
are measured from their header before anything decodes them.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import json
import math
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.filters import (
    is_allowed,
    is_local_address,
    normalise_host,
    parse_allow_hosts,
    url_problem,
)
from pipeline.startup import img2dataset_downloader

SUCCESS_MARKER = "_SUCCESS"
IMAGES_FILE = "images.bin"
SAMPLES_FILE = "samples.parquet"
INPUT_FILE = "input.arrow"

KEPT = "kept"
DOWNLOAD_FAILED = "download_failed"
DECODE_FAILED = "decode_failed"
IMAGE_TOO_SMALL = "image_too_small"
IMAGE_TOO_LARGE = "image_too_large"
BAD_ASPECT_RATIO = "bad_aspect_ratio"
DOWNLOAD_STATUSES = (DOWNLOAD_FAILED, DECODE_FAILED, IMAGE_TOO_SMALL, IMAGE_TOO_LARGE, BAD_ASPECT_RATIO)
IMAGE_AREA_ERROR = "image area too large"
_RESIZE_ERRORS = {
    "image too small": IMAGE_TOO_SMALL,
    IMAGE_AREA_ERROR: IMAGE_TOO_LARGE,
    "aspect ratio too large": BAD_ASPECT_RATIO,
}
SAMPLE_COLUMNS = ("key", "status", "error", "width", "height", "original_width", "original_height", "offset", "length")


@dataclass
class DownloadConfig:
    """img2dataset settings. ``max_image_area`` / ``max_aspect_ratio`` 0 mean no limit.

    ``resize_mode`` ``keep_ratio`` makes the shorter side ``image_size``.
    ``samples_per_unit`` rows form one Dask task with its own completion marker.
    ``timeout`` bounds a whole download (connect, redirects, body) in seconds; ``max_bytes``
    caps one response (0: no cap); ``max_image_area`` is checked on the image header, before
    anything is decoded.
    """

    image_size: int = 256  # target size in pixels (shorter side for keep_ratio)
    resize_mode: str = "keep_ratio"  # img2dataset resize mode (keep_ratio, center_crop, border, no)
    resize_only_if_bigger: bool = False  # never upscale smaller images
    encode_quality: int = 95  # JPEG quality of the stored images (0-100)
    min_image_size: int = 0  # images with a smaller side are image_too_small
    max_image_area: float = 0.0  # width x height above this is image_too_large (0: no limit)
    #: longer/shorter side above this is bad_aspect_ratio (0: no limit)
    max_aspect_ratio: float = 0.0
    timeout: float = 10.0  # seconds for a whole download (connect, redirects, body)
    max_bytes: int = 32 * 2**20  # largest response accepted, in bytes (0: no cap)
    retries: int = 0  # extra attempts after a failed download
    thread_count: int = 32  # download threads per task
    samples_per_unit: int = 10000  # rows per download task (one resume marker each)
    user_agent_token: str | None = None  # added to the User-Agent and checked against X-Robots-Tag
    disallowed_header_directives: list[str] = field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"]
    )  # X-Robots-Tag values that refuse an image


@dataclass(frozen=True)
class UnitResult:
    unit: str
    rows: int
    kept: int


def is_done(unit_dir: str | Path) -> bool:
    return (Path(unit_dir) / SUCCESS_MARKER).is_file()


def status_of(img2dataset_status: str | None, error: str | None) -> str:
    """img2dataset's (status, error message) -> one of ours."""
    if img2dataset_status == "success":
        return KEPT
    if img2dataset_status == "failed_to_resize" or (error or "").startswith("Image decoding error"):
        return _resize_status(error, DECODE_FAILED)
    return _resize_status(error, DOWNLOAD_FAILED)  # header checks run before the resizer


def _resize_status(error: str | None, default: str) -> str:
    """The status of a size error ("image too small (1x1; ...)"), or ``default``."""
    return next((status for prefix, status in _RESIZE_ERRORS.items() if (error or "").startswith(prefix)), default)


class UnitWriter:
    """img2dataset sample-writer interface; appends images to one blob, rows to a parquet."""

    def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
        self.folder = Path(output_folder)
        self.blob = open(self.folder / IMAGES_FILE, "wb")  # noqa: SIM115 - closed in close()
        self.rows: list[dict] = []

    def write(self, img_str: bytes | None, key: str, caption: str | None, meta: dict) -> None:
        offset = self.blob.tell()
        if img_str is not None:
            self.blob.write(img_str)
        self.rows.append(
            {
                "key": meta["sample_key"],
                "status": status_of(meta.get("status"), meta.get("error_message")),
                "error": meta.get("error_message") or "",
                "width": meta.get("width") or 0,
                "height": meta.get("height") or 0,
                "original_width": meta.get("original_width") or 0,
                "original_height": meta.get("original_height") or 0,
                "offset": offset if img_str is not None else -1,
                "length": len(img_str) if img_str is not None else 0,
            }
        )

    def close(self) -> None:
        self.blob.close()
        frame = pd.DataFrame(self.rows, columns=list(SAMPLE_COLUMNS))
        frame.sort_values("key").to_parquet(self.folder / SAMPLES_FILE, index=False)


# ------------------------------------------------------------------ guarded, bounded fetch


class BlockedAddress(OSError):
    """A connection to a local address that the allow-list does not name."""


class DownloadLimit(OSError):
    """A response over ``download.max_bytes`` or past the download's deadline."""


class Budget:
    """One download's deadline: at expiry every socket it opened is shut down, so a server
    that trickles bytes cannot hold the download past ``timeout`` (per-read timeouts would
    restart at each byte)."""

    def __init__(self, timeout: float):
        self.deadline = time.monotonic() + timeout
        self.expired = False
        self._watches: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout, self.expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.expired:
            raise DownloadLimit("timed out")
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._watches.append(sock.dup())  # shares the connection, survives TLS wrapping
            if self.expired:
                self._shutdown(self._watches[-1])

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._watches:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._watches:
                sock.close()
            self._watches.clear()


_current = threading.local()  # the Budget of the download running on this thread


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
        budget = getattr(_current, "budget", None)
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
    """Follows a redirect only when its target passes :func:`pipeline.filters.url_problem`
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
def _allowed(allow_hosts: tuple[str, ...]) -> frozenset:
    return parse_allow_hosts(list(allow_hosts))


@lru_cache(maxsize=16)
def _opener(allow_hosts: tuple[str, ...]) -> urllib.request.OpenerDirector:
    """Direct connections only (proxy variables are ignored: every address must be checked)."""
    allowed = _allowed(allow_hosts)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        GuardedHTTPHandler(allowed),
        GuardedHTTPSHandler(allowed),
        GuardedRedirects(allowed),
    )


def read_bounded(response, max_bytes: int, budget: Budget) -> bytes:
    """The body, refusing more than ``max_bytes`` (0: no cap) and stopping at the deadline."""
    declared = response.headers.get("Content-Length", "")
    if max_bytes and declared.isdigit() and int(declared) > max_bytes:
        raise DownloadLimit(f"response of {declared} bytes exceeds download.max_bytes ({max_bytes})")
    chunks, size = [], 0
    while True:
        budget.remaining()
        chunk = response.read1(1 << 16)
        if not chunk:
            budget.remaining()  # an expired deadline shows up as a short read
            return b"".join(chunks)
        size += len(chunk)
        if max_bytes and size > max_bytes:
            raise DownloadLimit(f"response exceeds download.max_bytes ({max_bytes})")
        chunks.append(chunk)


_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_ONE_BAND_MODES = ("1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")
RGB_BYTES = 3  # max_image_area is a budget of 8-bit RGB pixels


def has_alpha(image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def sample_bytes(image, data: bytes) -> int:
    """Bytes per sample once decoded: 2 for 16-bit PNGs and I;16, 4 for 32-bit modes, else 1."""
    if image.mode in ("I", "F"):
        return 4
    if image.mode.startswith("I;16") or (data[:8] == b"\x89PNG\r\n\x1a\n" and data[24:25] == b"\x10"):
        return 2
    return 1


def decode_bytes(image, data: bytes) -> int:
    """What decoding costs in bytes, counted as the resizer decodes (alpha kept, 16 bits kept)."""
    bands = 4 if has_alpha(image) else 1 if image.mode in _ONE_BAND_MODES else 3
    width, height = image.size
    return width * height * bands * sample_bytes(image, data)


def header_problem(
    data: bytes, max_image_area: float, min_image_size: int = 0, max_aspect_ratio: float = 0.0
) -> str | None:
    """Checks the image header only (nothing is decoded): unreadable, or over ``max_image_area``
    pixels (0: no limit), counted with channels and bit depth (an RGBA or 16-bit image costs
    more than an 8-bit RGB one), which stops decompression bombs before they are allocated;
    then the resizer's size checks, so that the message can name the sizes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                cost = decode_bytes(image, data)
    except Image.DecompressionBombError:
        return f"{IMAGE_AREA_ERROR} (over PIL's decompression-bomb limit)"
    except (UnidentifiedImageError, OSError, ValueError) as err:
        return f"Image decoding error: unreadable header ({type(err).__name__})"
    size = f"{width}x{height}"
    if max_image_area and (width * height > max_image_area or cost > RGB_BYTES * max_image_area):
        return f"{IMAGE_AREA_ERROR} ({size}, {cost:,d} bytes decoded; download.max_image_area is {max_image_area:g})"
    if min(width, height) < min_image_size:
        return f"image too small ({size}; download.min_image_size is {min_image_size})"
    if max_aspect_ratio and max(width, height) > max_aspect_ratio * max(min(width, height), 1):
        return f"aspect ratio too large ({size}; download.max_aspect_ratio is {max_aspect_ratio:g})"
    return None


def flatten_image(data: bytes) -> bytes:
    """An image with alpha or more than 8 bits per sample as 8-bit RGB (on white) or gray, as
    BMP; others unchanged. The resizer would otherwise matte alpha in float64 (about 24 bytes
    per pixel per temporary array); this costs about 11 bytes per pixel in all."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        if not has_alpha(image) and sample_bytes(image, data) == 1:
            return data
        image.load()
        if has_alpha(image):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
        elif image.mode.startswith("I;16"):
            import numpy as np

            flat = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), "L")
        else:
            flat = image.convert("RGB" if image.mode not in _ONE_BAND_MODES else "L")
    buffer = io.BytesIO()
    flat.save(buffer, "BMP")
    return buffer.getvalue()


def _agent(user_agent_token: str | None) -> str:
    agent = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
    if user_agent_token:
        agent += f" (compatible; {user_agent_token}; +https://github.com/rom1504/img2dataset)"
    return agent


def fetch(
    url: str,
    timeout: float,
    max_bytes: int,
    allow_hosts: tuple[str, ...],
    user_agent_token: str | None = None,
    disallowed: list[str] | None = None,
) -> bytes:
    """The body at ``url`` through the guarded opener, within ``timeout`` seconds in all.

    Only http(s) URLs that pass :func:`pipeline.filters.url_problem` are opened (urllib alone
    would also read ``file:`` and ``data:`` URLs).
    """
    from img2dataset.downloader import is_disallowed

    problem = url_problem(url, _allowed(tuple(allow_hosts)))
    if problem:
        raise BlockedAddress(f"refused URL ({problem})")
    budget = Budget(timeout)
    _current.budget = budget
    try:
        request = urllib.request.Request(url, data=None, headers={"User-Agent": _agent(user_agent_token)})
        with _opener(allow_hosts).open(request, timeout=budget.remaining()) as response:
            if disallowed and is_disallowed(response.headers, user_agent_token, disallowed):
                raise DownloadLimit("Use of image disallowed by X-Robots-Tag directive")
            return read_bounded(response, max_bytes, budget)
    except OSError:
        if budget.expired:
            raise DownloadLimit("timed out") from None
        raise
    finally:
        _current.budget = None
        budget.close()


def _guarded_download_image(
    row,
    timeout,
    user_agent_token,
    disallowed_header_directives,
    allow_hosts: tuple[str, ...],
    max_bytes: int = 0,
    max_image_area: float = 0.0,
    min_image_size: int = 0,
    max_aspect_ratio: float = 0.0,
):
    """img2dataset's ``download_image`` (same return contract), guarded and bounded."""
    key, url = row
    try:
        data = fetch(url, timeout, max_bytes, allow_hosts, user_agent_token, disallowed_header_directives)
    except Exception as err:  # noqa: BLE001 - every failure is a row status
        return key, None, str(err)
    problem = header_problem(data, max_image_area, min_image_size, max_aspect_ratio)
    if problem:
        return key, None, problem
    try:
        return key, io.BytesIO(flatten_image(data)), None
    except Exception as err:  # noqa: BLE001 - a corrupt body is a decode_failed row
        return key, None, f"Image decoding error: {type(err).__name__}"


# ------------------------------------------------------------------ one unit


def _resizer(config: DownloadConfig):
    from img2dataset.resizer import Resizer

    return Resizer(
        image_size=config.image_size,
        resize_mode=config.resize_mode,
        resize_only_if_bigger=config.resize_only_if_bigger,
        encode_quality=config.encode_quality,
        encode_format="jpg",
        min_image_size=config.min_image_size,
        max_image_area=config.max_image_area or float("inf"),
        max_aspect_ratio=config.max_aspect_ratio or float("inf"),
    )


def _downloader(config: DownloadConfig, folder: Path):
    from img2dataset.downloader import Downloader

    return Downloader(
        sample_writer_class=UnitWriter,
        resizer=_resizer(config),
        thread_count=config.thread_count,
        save_caption=True,
        extract_exif=False,
        output_folder=str(folder),
        column_list=["sample_key", "caption", "url"],
        timeout=config.timeout,
        number_sample_per_shard=max(config.samples_per_unit, 2),
        oom_shard_count=5,
        compute_hash=None,
        verify_hash_type=None,
        encode_format="jpg",
        retries=config.retries,
        user_agent_token=config.user_agent_token,
        disallowed_header_directives=config.disallowed_header_directives,
    )


def download_unit(
    rows: pd.DataFrame, folder: str | Path, config: DownloadConfig, allow_hosts: tuple[str, ...] = ()
) -> UnitResult:
    """Download ``rows`` (key, url, caption) into ``folder``; skipped when already done."""
    i2d = img2dataset_downloader()

    folder = Path(folder)
    if is_done(folder):
        return read_result(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "sample_key": pa.array(rows["key"].astype(str).tolist(), pa.string()),
            "caption": pa.array(rows["caption"].astype(str).tolist(), pa.string()),
            "url": pa.array(rows["url"].astype(str).tolist(), pa.string()),
        }
    )
    with pa.OSFile(str(folder / INPUT_FILE), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    i2d.download_image = partial(
        _guarded_download_image,
        allow_hosts=tuple(allow_hosts),
        max_bytes=config.max_bytes,
        max_image_area=config.max_image_area,
        min_image_size=config.min_image_size,
        max_aspect_ratio=config.max_aspect_ratio,
    )
    ok, _ = _downloader(config, folder)((0, str(folder / INPUT_FILE)))
    if not ok or not (folder / SAMPLES_FILE).is_file():
        raise RuntimeError(f"img2dataset failed on unit {folder} (see the worker log)")
    samples = pd.read_parquet(folder / SAMPLES_FILE, columns=["status"])
    result = UnitResult(folder.name, len(rows), int((samples["status"] == KEPT).sum()))
    _write_marker(folder, result)
    return result


def _write_marker(folder: Path, result: UnitResult) -> None:
    tmp = folder / f"{SUCCESS_MARKER}.tmp"
    tmp.write_text(json.dumps({"rows": result.rows, "kept": result.kept}))
    os.replace(tmp, folder / SUCCESS_MARKER)


def read_result(folder: str | Path) -> UnitResult:
    data = json.loads((Path(folder) / SUCCESS_MARKER).read_text())
    return UnitResult(Path(folder).name, int(data["rows"]), int(data["kept"]))


def read_samples(folder: str | Path) -> pd.DataFrame:
    """The unit's per-row table (see :data:`SAMPLE_COLUMNS`), sorted by key."""
    return pd.read_parquet(Path(folder) / SAMPLES_FILE)


def read_image(folder: str | Path, offset: int, length: int) -> bytes:
    with open(Path(folder) / IMAGES_FILE, "rb") as blob:
        blob.seek(offset)
        return blob.read(length)


def unit_count(rows: int, samples_per_unit: int) -> int:
    return math.ceil(rows / samples_per_unit) if rows else 0
