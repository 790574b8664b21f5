"""One image fetched for img2dataset's downloader (:func:`guarded_download_image` replaces its
``download_image``): through the URL guard (:mod:`pipeline.urlguard`), within one deadline and
a byte cap (:mod:`pipeline.deadline`), and measured from its header before anything decodes it
(decompression bombs, sizes); images with alpha or 16-bit samples are flattened to 8-bit first.
"""

from __future__ import annotations

import io
import urllib.request
import warnings

from pipeline import deadline
from pipeline.deadline import Budget, DownloadLimit
from pipeline.unitfiles import IMAGE_AREA_ERROR
from pipeline.urlguard import BlockedAddress, allowed_hosts, guarded_opener, url_problem


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

    Only http(s) URLs that pass :func:`pipeline.urlguard.url_problem` are opened (urllib alone
    would also read ``file:`` and ``data:`` URLs).
    """
    from img2dataset.downloader import is_disallowed

    problem = url_problem(url, allowed_hosts(tuple(allow_hosts)))
    if problem:
        raise BlockedAddress(f"refused URL ({problem})")
    with deadline.running(timeout) as budget:
        try:
            request = urllib.request.Request(url, data=None, headers={"User-Agent": _agent(user_agent_token)})
            with guarded_opener(tuple(allow_hosts)).open(request, timeout=budget.remaining()) as response:
                if disallowed and is_disallowed(response.headers, user_agent_token, disallowed):
                    raise DownloadLimit("Use of image disallowed by X-Robots-Tag directive")
                return read_bounded(response, max_bytes, budget)
        except OSError:
            if budget.expired:
                raise DownloadLimit("timed out") from None
            raise


def guarded_download_image(
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
