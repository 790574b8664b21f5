"""The downloader's guard and bounds, end to end on loopback: resolved addresses are checked
at connect time and on every redirect hop, a download has one deadline and a byte cap, and
images are measured from their header before anything decodes them."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lightclip_demo.localserver import LocalServer, Route
from pipeline import download, unitfiles
from pipeline.deadline import DownloadLimit
from pipeline.download import DownloadConfig
from pipeline.fetch import fetch, flatten_image, guarded_download_image, header_problem
from pipeline.urlguard import BlockedAddress, check_addresses, parse_allow_hosts

REBIND = "images.rebind.test"  # a public-looking name that the patched resolver points at loopback


def jpeg(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def server():
    routes = {
        "/a.jpg": Route.data(jpeg()),
        "/trickle": Route.trickle(0.25),
        "/big": Route.data(b"\xff" * 50_000),
        "/big-unsized": Route(body=b"\xff" * 50_000, send_length=False),
        "/bomb": Route.png_bomb(5000, 5000),
    }
    with LocalServer(None, routes) as running:
        yield running


@pytest.fixture
def rebinding(monkeypatch):
    """Resolve REBIND (and nothing else new) to 127.0.0.1, as a hostile DNS answer would."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        return real("127.0.0.1" if host == REBIND else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_allowed_host_is_fetched(server):
    assert fetch(server.url("a.jpg"), 5, 0, (server.host_port,)) == jpeg()


@pytest.mark.parametrize("host", ["127.0.0.%31", "localhost", "127.1", "[::ffff:127.0.0.1]", "0x7f.1"])
def test_local_spellings_are_refused_at_connect(server, host):
    with pytest.raises(OSError, match="refused"):
        fetch(f"http://{host}:{server.port}/a.jpg", 5, 0, ())
    assert server.requested("a.jpg") == 0


def test_name_resolving_to_loopback_is_refused(server, rebinding):
    url = f"http://{REBIND}:{server.port}/a.jpg"
    with pytest.raises(OSError, match=f"{REBIND} resolves to local address 127.0.0.1"):
        fetch(url, 5, 0, (server.host_port,))  # the allow-list names the address, not this name
    assert server.requested("a.jpg") == 0
    assert fetch(url, 5, 0, (f"{REBIND}:{server.port}",)) == jpeg()  # explicit allow-listing works


def test_cloud_metadata_behind_a_name_is_refused(monkeypatch):
    answers = {"meta.example": "169.254.169.254", "mixed.example": "10.1.2.3", "fine.example": "93.184.216.34"}

    def fake(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)  # pure check: nothing connects
    for name in ("meta.example", "mixed.example"):
        with pytest.raises(BlockedAddress, match="resolves to local address"):
            check_addresses(name, 80, frozenset())
    assert check_addresses("fine.example", 80, frozenset())[0][4][0] == "93.184.216.34"
    assert check_addresses("meta.example", 80, parse_allow_hosts(["meta.example"]))


def test_every_redirect_hop_is_checked(server, rebinding):
    with LocalServer(None, {"/a.jpg": Route.data(jpeg())}) as inner:
        server.add_route("/to-encoded", Route.redirect(f"http://127.0.0.%31:{inner.port}/a.jpg"))
        server.add_route("/to-name", Route.redirect(f"http://{REBIND}:{inner.port}/a.jpg"))
        server.add_route("/to-allowed", Route.redirect("/a.jpg"))
        allow = (server.host_port,)
        with pytest.raises(OSError, match="redirect refused"):
            fetch(server.url("to-encoded"), 5, 0, allow)
        with pytest.raises(OSError, match="resolves to local address"):
            fetch(server.url("to-name"), 5, 0, allow)
        assert inner.requested("a.jpg") == 0
        assert fetch(server.url("to-allowed"), 5, 0, allow) == jpeg()


def test_trickling_server_cannot_hold_a_download(server):
    started = time.monotonic()
    with pytest.raises(DownloadLimit, match="timed out"):
        fetch(server.url("trickle"), 1.5, 0, (server.host_port,))
    assert time.monotonic() - started < 1.5 + 1.0


@pytest.mark.parametrize("path", ["big", "big-unsized"])
def test_response_size_is_capped(server, path):
    with pytest.raises(DownloadLimit, match="download.max_bytes"):
        fetch(server.url(path), 5, 10_000, (server.host_port,))
    assert len(fetch(server.url(path), 5, 60_000, (server.host_port,))) == 50_000


def test_header_check_names_the_status(server):
    allow = (server.host_port,)
    bomb = guarded_download_image((0, server.url("bomb")), 5, None, [], allow, 0, 16e6)
    assert bomb[1] is None and unitfiles.status_of("failed_to_download", bomb[2]) == unitfiles.IMAGE_TOO_LARGE
    garbage = guarded_download_image((0, server.url("big")), 5, None, [], allow, 0, 16e6)
    assert unitfiles.status_of("failed_to_download", garbage[2]) == unitfiles.DECODE_FAILED
    good = guarded_download_image((0, server.url("a.jpg")), 5, None, [], allow, 0, 16e6)
    assert good[2] is None and good[1].getvalue() == jpeg()


def test_unit_statuses(server, tmp_path):
    names = ["a.jpg", "bomb", "trickle", "big", "missing"]
    rows = pd.DataFrame(
        {"key": [f"{i:012d}" for i in range(5)], "url": [server.url(n) for n in names], "caption": ["c"] * 5}
    )
    config = DownloadConfig(image_size=32, timeout=1.0, max_bytes=40_000, max_image_area=16e6, thread_count=4)
    download.download_unit(rows, tmp_path / "unit", config, (server.host_port,))
    statuses = list(unitfiles.read_samples(tmp_path / "unit")["status"])
    assert statuses == ["kept", "image_too_large", "download_failed", "download_failed", "download_failed"]


PEAK_SCRIPT = """
import json, resource, struct, sys, zlib
from pipeline import download, unitfiles
from lightclip_demo.localserver import LocalServer, Route, deflate_zeros
import pandas as pd

def rgba_png(side):  # transparent black, a few KB on the wire
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    pixels = deflate_zeros((1 + side * 4) * side)
    return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")

kind = sys.argv[1]
if kind == "bomb":
    route = Route.png_bomb(12000, 12000)
elif kind.startswith("rgba"):
    route = Route.data(rgba_png(int(kind[4:])), content_type="image/png")
else:
    route = Route.data(bytes.fromhex(sys.argv[2]))
with LocalServer(None, {"/x": route}) as server:
    rows = pd.DataFrame({"key": ["000000000000"], "url": [server.url("x")], "caption": ["c"]})
    config = download.DownloadConfig(image_size=32, max_image_area=16e6, thread_count=2)
    download.download_unit(rows, sys.argv[3], config, (server.host_port,))
status = unitfiles.read_samples(sys.argv[3])["status"][0]
print(json.dumps({"status": status, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak(kind: str, folder: Path) -> dict:
    args = [sys.executable, "-c", PEAK_SCRIPT, kind, jpeg((800, 600)).hex(), str(folder)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bomb_costs_no_more_memory_than_a_normal_image(tmp_path):
    normal, bomb = peak("normal", tmp_path / "n"), peak("bomb", tmp_path / "b")
    assert normal["status"] == "kept" and bomb["status"] == "image_too_large"
    assert bomb["peak_kb"] < 1.2 * normal["peak_kb"]  # a full decode would add ~430 MB


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/hostname",
        "data:image/png;base64,iVBORw0KGgo=",
        "ftp://127.0.0.1/a.jpg",
        "http://user:pw@example.com/a.jpg",
        "http://[fec0::1]/a.jpg",
    ],
)
def test_fetch_itself_refuses_what_the_url_guard_refuses(url):
    with pytest.raises(BlockedAddress, match="refused URL"):
        fetch(url, 1.0, 1000, ())


def test_site_local_addresses_are_local():
    import ipaddress

    from pipeline.urlguard import is_local_address

    assert is_local_address(ipaddress.ip_address("fec0::1"))
    assert is_local_address(ipaddress.ip_address("feff:ffff:ffff:ffff::1"))
    assert not is_local_address(ipaddress.ip_address("2001:4860:4860::8888"))


@pytest.mark.slow
def test_rgba_png_at_the_area_limit_is_refused_by_its_decoded_bytes(tmp_path):
    normal, rgba = peak("normal", tmp_path / "n"), peak("rgba4000", tmp_path / "r")
    assert rgba["status"] == "image_too_large"  # 16e6 pixels x 4 bytes > the 8-bit RGB budget
    assert rgba["peak_kb"] < 1.2 * normal["peak_kb"]  # the old path decoded it: +1.1 GB


@pytest.mark.slow
def test_rgba_png_within_budget_is_flattened_cheaply(tmp_path):
    normal, rgba = peak("normal", tmp_path / "n"), peak("rgba2000", tmp_path / "r")
    assert rgba["status"] == "kept"
    assert rgba["peak_kb"] < normal["peak_kb"] + 120 * 1024  # float64 matting cost about +300 MB


def test_flatten_image_mattes_alpha_on_white_and_keeps_plain_images():
    plain = jpeg()
    assert flatten_image(plain) is plain
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 3), (255, 0, 0, 0)).save(buffer, "PNG")
    flat = Image.open(io.BytesIO(flatten_image(buffer.getvalue())))
    assert flat.mode == "RGB" and flat.size == (4, 3) and flat.getpixel((0, 0)) == (255, 255, 255)
    buffer = io.BytesIO()
    Image.new("I;16", (2, 2), 65535).save(buffer, "PNG")
    flat = Image.open(io.BytesIO(flatten_image(buffer.getvalue())))
    assert flat.mode == "L" and flat.getpixel((0, 0)) == 255


def test_header_problems_name_the_sizes_and_the_setting():
    wide = jpeg((400, 20))
    assert header_problem(wide, 1e6, 8, 10) == "aspect ratio too large (400x20; download.max_aspect_ratio is 10)"
    assert header_problem(wide, 1e6, 32) == "image too small (400x20; download.min_image_size is 32)"
    assert header_problem(wide, 4000) == (
        "image area too large (400x20, 24,000 bytes decoded; download.max_image_area is 4000)"
    )
    assert header_problem(wide, 1e6, 8, 20) is None
    for text in ("image too small (1x1; x)", "aspect ratio too large (9x1; x)", "image area too large (9x9)"):
        assert unitfiles.status_of("failed_to_download", text) != unitfiles.DOWNLOAD_FAILED
