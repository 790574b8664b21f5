"""A local HTTP server for tests, benchmarks and the demo: files from a folder plus fault routes.

Binds 127.0.0.1 on a free port, serves in a background thread, records every requested path::

    with LocalServer(root, routes={"/gone.jpg": Route.not_found()}) as server:
        server.url("cat.jpg")            # http://127.0.0.1:PORT/cat.jpg
        server.requested("/cat.jpg")     # how many times it was asked for
"""

from __future__ import annotations

import mimetypes
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Route:
    """A canned response: status, body, content type, an optional delay and redirect target.

    ``trickle_s``: send the body one byte at a time, this many seconds apart (a server that
    keeps a connection alive without ever finishing). ``send_length``: False omits
    Content-Length (the client learns the size only by reading).
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    delay_s: float = 0.0
    location: str | None = None
    trickle_s: float = 0.0
    send_length: bool = True

    @classmethod
    def not_found(cls) -> Route:
        return cls(status=404, body=b"not found", content_type="text/plain")

    @classmethod
    def server_error(cls) -> Route:
        return cls(status=500, body=b"server error", content_type="text/plain")

    @classmethod
    def slow(cls, delay_s: float, body: bytes = b"", content_type: str = "image/jpeg") -> Route:
        """Answers only after ``delay_s`` (set it past the client's timeout)."""
        return cls(body=body, content_type=content_type, delay_s=delay_s)

    @classmethod
    def corrupt(cls, body: bytes = b"\xff\xd8\xff\xe0 this is not a jpeg" * 8) -> Route:
        """Bytes that claim to be a JPEG but do not decode."""
        return cls(body=body, content_type="image/jpeg")

    @classmethod
    def html(cls) -> Route:
        return cls(body=b"<html><body><h1>Photo page</h1></body></html>", content_type="text/html")

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Route:
        return cls(status=status, location=location, content_type="text/plain")

    @classmethod
    def data(cls, body: bytes, content_type: str = "image/jpeg", delay_s: float = 0.0) -> Route:
        return cls(body=body, content_type=content_type, delay_s=delay_s)

    @classmethod
    def trickle(cls, interval_s: float, body: bytes = b"\xff" * 1000) -> Route:
        return cls(body=body, content_type="image/jpeg", trickle_s=interval_s)

    @classmethod
    def png_bomb(cls, width: int, height: int, rgb: bool = False) -> Route:
        """A valid PNG of ``width`` x ``height`` black pixels, a few hundred bytes per megapixel."""
        return cls(body=png_bomb(width, height, rgb), content_type="image/png")


def png_bomb(width: int, height: int, rgb: bool = False) -> bytes:
    """A PNG that is tiny on the wire and ``width * height`` black pixels once decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if rgb else 0, 0, 0, 0)
    pixels = deflate_zeros((1 + width * (3 if rgb else 1)) * height)  # filter byte 0 + black rows

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def deflate_zeros(size: int, block: int = 1 << 22) -> bytes:
    """zlib stream of ``size`` zero bytes, built from one compressed block repeated: each block
    ends with a full flush, so the copies decode independently (seconds for gigabytes)."""

    def raw(data: bytes, mode: int) -> bytes:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        return packer.compress(data) + packer.flush(mode)

    full, rest = divmod(size, block)
    body = raw(bytes(block), zlib.Z_FULL_FLUSH) * full + raw(bytes(rest), zlib.Z_FINISH)
    adler = ((size % 65521) << 16) | 1  # Adler-32 of zero bytes
    return b"\x78\xda" + body + struct.pack(">I", adler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = unquote(urlsplit(self.path).path)
        self.server.record(path)
        route = self.server.routes.get(path) or self.server.file_route(path)
        delay = route.delay_s or self.server.delay_s
        if delay:
            time.sleep(delay)
        try:
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            else:
                self.close_connection = True
            if route.location:
                self.send_header("Location", route.location)
            self.end_headers()
            self._send_body(route)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _send_body(self, route: Route) -> None:
        if not route.trickle_s:
            self.wfile.write(route.body)
            return
        for i in range(len(route.body)):
            self.wfile.write(route.body[i : i + 1])
            self.wfile.flush()
            time.sleep(route.trickle_s)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path | None, routes: dict[str, Route], delay_s: float):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root.resolve() if root else None
        self.routes = dict(routes)
        self.delay_s = delay_s
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def record(self, path: str) -> None:
        with self.lock:
            self.counts[path] += 1

    def file_route(self, path: str) -> Route:
        if self.root is None:
            return Route.not_found()
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return Route.not_found()
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return Route(body=target.read_bytes(), content_type=kind)


class LocalServer:
    """Context manager: ``root`` files (may be None) plus ``routes`` {path: Route}.

    ``delay_s`` slows every response (e.g. to interrupt a build mid-download in a test).
    """

    def __init__(self, root: str | Path | None = None, routes: dict[str, Route] | None = None, delay_s: float = 0.0):
        self._server = _Server(Path(root) if root else None, routes or {}, delay_s)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._started = False

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host_port}/{path.lstrip('/')}"

    def add_route(self, path: str, route: Route) -> None:
        self._server.routes["/" + path.lstrip("/")] = route

    def set_delay(self, delay_s: float) -> None:
        self._server.delay_s = delay_s

    def requested(self, path: str) -> int:
        with self._server.lock:
            return self._server.counts["/" + path.lstrip("/")]

    @property
    def requests(self) -> Counter[str]:
        """A copy of {path: number of requests} so far."""
        with self._server.lock:
            return Counter(self._server.counts)

    def start(self) -> LocalServer:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.shutdown()
            self._started = False
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
