"""Hostile servers against the downloader, on loopback. Writes bench/results/hostile.json.

1. Peak memory of a download worker (a fresh process running one download unit) on a served
   decompression bomb (a 1.2 MB PNG of 20000 x 20000 RGB pixels) against the same unit on a
   normal photo-sized JPEG. Target: bomb / normal <= 1.2 (the header check refuses the bomb
   before anything decodes it; a full decode would allocate 1.2 GB).
2. The longest a trickling server (one byte every 2 s, never finishing) holds a download, with
   ``download.timeout`` 5 s. Target: <= timeout + 1 s.

Usage: python bench/bench_hostile.py [--small] [--only memory|trickle]
(--small: 8000 x 8000 bomb, 3 s timeout; --small and --only write no results file)
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
from multiprocessing.pool import ThreadPool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from lightclip_demo.localserver import LocalServer, Route  # noqa: E402
from pipeline import download  # noqa: E402

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


def start_worker(url: str, area: float, host_port: str) -> subprocess.Popen:
    """A fresh process that downloads one unit of ``url`` and prints its peak memory."""
    args = [sys.executable, "-c", WORKER, str(ROOT), url, str(area), host_port]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def peak_of(worker: subprocess.Popen) -> dict:
    out, err = worker.communicate(timeout=3600)
    if worker.returncode:
        raise RuntimeError(f"worker failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def memory(side: int) -> dict:
    """Both workers run at once (separate processes: separate peaks)."""
    routes = {"/photo.jpg": Route.data(photo()), "/bomb.png": Route.png_bomb(side, side, rgb=True)}
    area = 89_478_485.0  # the YFCC recipe's max_image_area (PIL's default limit)
    with LocalServer(None, routes) as server:
        workers = [start_worker(server.url(name), area, server.host_port) for name in ("photo.jpg", "bomb.png")]
        normal, bomb = (peak_of(worker) for worker in workers)
    return {"bomb_pixels": side * side, "bomb_bytes": len(routes["/bomb.png"].body),
            "normal": normal, "bomb": bomb, "ratio": round(bomb["peak_mb"] / normal["peak_mb"], 3),
            "target_ratio": 1.2}  # fmt: skip


def _held(url: str, timeout: float, host_port: str) -> tuple[float, str]:
    started = time.monotonic()
    _, _, error = download._guarded_download_image((0, url), timeout, None, [], (host_port,))
    return time.monotonic() - started, str(error)


def trickle(timeout: float, interval: float, downloads: int = 4) -> dict:
    """``downloads`` trickling URLs fetched at once through the downloader's fetch function
    (img2dataset is imported first, as the build's worker plugin does: its cold import is not
    a server holding a download)."""
    import img2dataset.downloader  # noqa: F401

    with LocalServer(None, {"/slow.jpg": Route.trickle(interval)}) as server:
        urls = [server.url(f"slow.jpg?{i}") for i in range(downloads)]
        with ThreadPool(downloads) as pool:
            held = pool.starmap(_held, [(url, timeout, server.host_port) for url in urls])
    return {"timeout_s": timeout, "byte_interval_s": interval, "downloads": downloads,
            "longest_hold_s": round(max(h for h, _ in held), 2), "target_s": timeout + 1,
            "errors": sorted({e for _, e in held})}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick run: smaller bomb, shorter timeout")
    parser.add_argument("--only", choices=["memory", "trickle"], help="run one of the two measurements")
    args = parser.parse_args()
    side, timeout = (8000, 3.0) if args.small else (20000, 5.0)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_before": os.getloadavg()}
    if args.only != "trickle":
        result["memory"] = memory(side)
    if args.only != "memory":
        result["trickle"] = trickle(timeout, 2.0)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if not args.small and not args.only:
        out = ROOT / "bench" / "results" / "hostile.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
