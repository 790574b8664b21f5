"""Hostile servers against the downloader, on loopback. Writes bench/results/hostile.json.

1. Peak memory of a download worker (a fresh process running one download unit) on a served
   decompression bomb (a 1.2 MB PNG of 20000 x 20000 RGB pixels) against the same unit on a
   normal photo-sized JPEG. Target: bomb / normal <= 1.2 (the header check refuses the bomb
   before anything decodes it; a full decode would allocate 1.2 GB).
2. The longest a trickling server (one byte every 2 s, never finishing) holds a download, with
   ``download.timeout`` 5 s. Target: <= timeout + 1 s.

Usage: python bench/bench_hostile.py [--small]   (--small: 8000 x 8000 bomb, 3 s timeout)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline import download  # noqa: E402
from pipeline.localserver import LocalServer, Route  # noqa: E402

WORKER = """
import json, resource, sys, tempfile
sys.path.insert(0, sys.argv[1])
import pandas as pd
from pipeline import download
url, area = sys.argv[2], float(sys.argv[3])
rows = pd.DataFrame({"key": ["000000000000"], "url": [url], "caption": ["c"]})
config = download.DownloadConfig(image_size=256, max_image_area=area, thread_count=4)
with tempfile.TemporaryDirectory() as folder:
    download.download_unit(rows, folder + "/unit", config, (sys.argv[4],))
    status = str(download.read_samples(folder + "/unit")["status"][0])
print(json.dumps({"status": status, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def photo() -> bytes:
    """A 1600 x 1200 JPEG with detail (a photo-sized download)."""
    image = Image.effect_noise((1600, 1200), 64).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def worker_peak(url: str, area: float, host_port: str) -> dict:
    args = [sys.executable, "-c", WORKER, str(ROOT), url, str(area), host_port]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(side: int) -> dict:
    routes = {"/photo.jpg": Route.data(photo()), "/bomb.png": Route.png_bomb(side, side, rgb=True)}
    with LocalServer(None, routes) as server:
        area = 89_478_485.0  # the YFCC recipe's max_image_area (PIL's default limit)
        normal = worker_peak(server.url("photo.jpg"), area, server.host_port)
        bomb = worker_peak(server.url("bomb.png"), area, server.host_port)
    return {"bomb_pixels": side * side, "bomb_bytes": len(routes["/bomb.png"].body),
            "normal": normal, "bomb": bomb, "ratio": round(bomb["peak_mb"] / normal["peak_mb"], 3),
            "target_ratio": 1.2}  # fmt: skip


def trickle(timeout: float, interval: float, downloads: int = 4) -> dict:
    """``downloads`` trickling URLs in one unit; the unit's wall time bounds each download."""
    with LocalServer(None, {"/slow.jpg": Route.trickle(interval)}) as server:
        rows = pd.DataFrame({"key": [f"{i:012d}" for i in range(downloads)],
                             "url": [server.url(f"slow.jpg?{i}") for i in range(downloads)],
                             "caption": ["c"] * downloads})  # fmt: skip
        config = download.DownloadConfig(timeout=timeout, thread_count=downloads)
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            started = time.monotonic()
            download.download_unit(rows, Path(folder) / "unit", config, (server.host_port,))
            held = time.monotonic() - started
            errors = sorted(set(download.read_samples(Path(folder) / "unit")["error"]))
    return {"timeout_s": timeout, "byte_interval_s": interval, "downloads": downloads,
            "longest_hold_s": round(held, 2), "target_s": timeout + 1, "errors": errors}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick run: smaller bomb, shorter timeout")
    args = parser.parse_args()
    side, timeout = (8000, 3.0) if args.small else (20000, 5.0)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": os.getloadavg(),
        "memory": memory(side),
        "trickle": trickle(timeout, 2.0),
        "load_after": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if not args.small:
        out = ROOT / "bench" / "results" / "hostile.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
