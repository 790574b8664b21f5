"""A small served image world with every failure kind, for the end-to-end pipeline tests."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from lightclip_demo.localserver import LocalServer, Route

TIMEOUT_S = 2.0
MAX_AREA = 1_000_000
CAPTIONS = [
    "a brown dog running on the sandy beach",
    "red car parked near the old stone church",
    "my grandmother cooking dinner for the whole family",
    "snowy mountain above a quiet blue lake",
    "children playing football in the green park",
    "an old wooden boat on the calm river",
    "fresh flowers in a glass vase on the table",
    "city street at night with bright lights",
]
# (name, route or None for a good image, expected status)
FAULTS = [
    ("missing.jpg", Route.not_found(), "download_failed"),
    ("error.jpg", Route.server_error(), "download_failed"),
    ("slow.jpg", "slow", "download_failed"),
    ("corrupt.jpg", Route.corrupt(), "decode_failed"),
    ("page.jpg", Route.html(), "decode_failed"),
    ("tiny.jpg", "tiny", "image_too_small"),
    ("huge.jpg", "huge", "image_too_large"),
]
FORBIDDEN_HOSTS = ["127.1", "2130706433", "0x7f000001", "[::1]", "localhost"]


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


@dataclass
class World:
    server: LocalServer
    metadata: Path
    good_keys: list[str]  # rows expected in the shards, key order
    captions: dict[str, str]  # key -> cleaned caption
    expected: dict[str, int]  # stats.json statuses
    forbidden_paths: list[str]


def make_world(root: Path, good: int = 24, delay_s: float = 0.0) -> World:
    """Images on disk, fault routes, metadata.jsonl mixing them; the server is started."""
    images = root / "images"
    images.mkdir(parents=True)
    for i in range(good):
        (images / f"img{i:03d}.jpg").write_bytes(jpeg(96 + 8 * (i % 5), 80 + 4 * (i % 7), (i * 9 % 256, 90, 160)))
    routes = {}
    for name, route, _ in FAULTS:
        if route == "slow":
            route = Route.slow(TIMEOUT_S * 4, jpeg(64, 64, (1, 2, 3)))
        elif route == "tiny":
            route = Route.data(jpeg(1, 1, (200, 0, 0)))
        elif route == "huge":
            route = Route.data(jpeg(1100, 1000, (0, 200, 0)))
        routes[f"/{name}"] = route
    routes["/moved.jpg"] = Route.redirect("/img000.jpg")
    server = LocalServer(images, routes, delay_s=delay_s).start()
    rows, expected = [], {}

    def add(url: str, caption: str, status: str) -> None:
        rows.append({"url": url, "caption": caption, "filename": f"f{len(rows)}.jpg"})
        expected[status] = expected.get(status, 0) + 1

    for i in range(good):
        caption = CAPTIONS[i % len(CAPTIONS)].replace(" ", "+") if i % 4 == 0 else CAPTIONS[i % len(CAPTIONS)]
        add(server.url(f"img{i:03d}.jpg"), caption + f" number {i}", "kept")
    add(server.url("moved.jpg"), "a redirected photo of a lake", "kept")
    for name, _, status in FAULTS:
        add(server.url(name), f"a photo called {name}", status)
    forbidden = []
    for host in FORBIDDEN_HOSTS:
        path = f"forbidden-{len(forbidden)}.jpg"
        forbidden.append("/" + path)
        add(f"http://{host}:{server.port}/{path}", "a photo from a local address", "unsafe_url")
    add(server.url("img001.jpg"), "the same url again", "duplicate_url")
    add(server.url("img002.jpg"), "   ", "empty_caption")
    add(server.url("img003.jpg"), "<b>&nbsp;</b>", "empty_caption")
    add("ftp://example.com/a.jpg", "a file over ftp", "unsafe_url")
    add(server.url("img004.jpg") + "?long", " ".join(["word"] * 80), "too_many_words")
    metadata = root / "metadata.jsonl"
    metadata.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = [f"{0:05d}{i:07d}" for i in range(len(rows))]
    from pipeline.filters import clean_caption

    kept = [k for k, r in zip(keys, rows) if r["url"].startswith(server.url("img")) or "moved" in r["url"]]
    kept = kept[: good + 1]
    captions = {k: clean_caption(r["caption"]) for k, r in zip(keys, rows)}
    return World(server, metadata, kept, captions, expected, forbidden)


def recipe(world: World, output: Path, **cluster) -> dict:
    """Overrides for recipes/data/demo.yaml that fit the world (allow only its own host:port)."""
    overrides = [
        f"output={output}",
        f"metadata.path={world.metadata}",
        f"filters.allow_hosts=['{world.server.host_port}']",
        f"download.timeout={TIMEOUT_S}",
        f"download.max_image_area={MAX_AREA}",
        "download.samples_per_unit=8",
        "download.thread_count=4",
        "shards.samples_per_shard=10",
        "tokenizer.vocab_size=300",
        "progress=false",
    ]
    overrides += [f"cluster.{k}={v}" for k, v in cluster.items()]
    return overrides
