"""Hostile servers against the downloader, on loopback. Writes bench/results/hostile.json.

1. Peak memory of a download worker (a fresh process running one download unit) on a served
   decompression bomb (a 1.2 MB PNG of 20000 x 20000 RGB pixels) against the same unit on a
   normal photo-sized JPEG. Target: bomb / normal <= 1.2 (the header check refuses the bomb
   before anything decodes it; a full decode would allocate 1.2 GB).
2. The longest a trickling server (one byte every 2 s, never finishing) holds a download, with
   ``download.timeout`` 5 s. Target: <= timeout + 1 s.
3. Peak memory of the training loader (one epoch) and of a WebDataset evaluation set read in a
   fresh process, on a shard holding a 1 GiB GNU sparse member (10 KB on disk) and on a
   gzip-compressed tar named ``00001.tar`` holding a 512 MiB member (about 0.5 MB), against the
   same reader on normal shards. Target: bomb / normal <= 1.2 for each.

Usage: python bench/bench_hostile.py [--small] [--only memory|trickle|shards]
(--small: 8000 x 8000 bomb, 3 s timeout, 64 MiB shard members, no results file; --only writes
its own section into the results file, leaving the others as they were)
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
from pipeline.fetch import guarded_download_image  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "stream"))  # the hostile shards the tests use
from hostile_tars import members_of, plain_tar, sparse_tar, write, zero_member_gzip  # noqa: E402

WORKER = """
import json, resource, sys, tempfile
sys.path.insert(0, sys.argv[1])
import pandas as pd
from pipeline import download, unitfiles
url, area = sys.argv[2], float(sys.argv[3])
rows = pd.DataFrame({"key": ["000000000000"], "url": [url], "caption": ["c"]})
config = download.DownloadConfig(image_size=256, max_image_area=area, thread_count=4)
with tempfile.TemporaryDirectory() as folder:
    download.download_unit(rows, folder + "/unit", config, (sys.argv[4],))
    status = str(unitfiles.read_samples(folder + "/unit")["status"][0])
print(json.dumps({"status": status, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def photo() -> bytes:
    """A 1600 x 1200 JPEG with detail (a photo-sized download)."""
    image = Image.effect_noise((1600, 1200), 64).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


READER = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
kind, folder = sys.argv[2], sys.argv[3]
import logging; logging.disable(logging.WARNING)
if kind == "loader":
    from pipeline.base.augment_image import MoCoConfig
    from pipeline.stream import PositionTracker, StreamConfig, build_loader
    from pipeline.base.tokenizer import CaptionTokenizer
    cfg = StreamConfig(shards=folder, workers=0, shard_shuffle=False, shuffle_buffer=0, samples_per_epoch=32,
                       max_skipped_fraction=1.0, image=MoCoConfig(size=64))
    tracker = PositionTracker(0)
    for batch in build_loader(cfg, CaptionTokenizer.from_file(folder), 4).epoch(0):
        tracker.update(batch.position)
    outcome = {"batches": tracker.batches, "skipped": tracker.skipped}
else:
    from lightclip.evaluation.wds_data import open_wds_classification
    from pipeline.base.augment_image import eval_transform
    data = open_wds_classification(folder, eval_transform(64))
    read, error = 0, None
    try:
        for _ in data.dataset:
            read += 1
    except Exception as err:
        error = f"{type(err).__name__}: {err}"[:160]
    outcome = {"samples": read, "error": error}
print(json.dumps({**outcome, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def start_process(script: str, *args: str) -> subprocess.Popen:
    """A fresh Python process running ``script`` (it prints one JSON line with its peak memory)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", script, str(ROOT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def start_worker(url: str, area: float, host_port: str) -> subprocess.Popen:
    """A fresh process that downloads one unit of ``url`` and prints its peak memory."""
    return start_process(WORKER, url, str(area), host_port)


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
    return {
        "bomb_pixels": side * side,
        "bomb_bytes": len(routes["/bomb.png"].body),
        "normal": normal,
        "bomb": bomb,
        "ratio": round(bomb["peak_mb"] / normal["peak_mb"], 3),
        "target_ratio": 1.2,
    }


def _held(url: str, timeout: float, host_port: str) -> tuple[float, str]:
    started = time.monotonic()
    _, _, error = guarded_download_image((0, url), timeout, None, [], (host_port,))
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
    return {
        "timeout_s": timeout,
        "byte_interval_s": interval,
        "downloads": downloads,
        "longest_hold_s": round(max(h for h, _ in held), 2),
        "target_s": timeout + 1,
        "errors": sorted({e for _, e in held}),
    }


def loader_sets(root: Path, bomb_bytes: int) -> dict[str, Path]:
    """Shard folders of two 16-sample shards: normal, the second with a sparse member, the
    second a gzip stream with one ``bomb_bytes`` member."""
    from synthetic import write_shards

    sets = {}
    for case in ("normal", "sparse", "gzip"):
        paths = write_shards(root / "loader" / case, [16, 16])
        members = members_of(paths[1])
        if case == "sparse":
            write(paths[1], sparse_tar([], members[0][0], 2 * bomb_bytes, members[1:]))
        elif case == "gzip":
            write(paths[1], zero_member_gzip(members[0][0], bomb_bytes))
        sets[case] = root / "loader" / case
    return sets


def eval_sets(root: Path, bomb_bytes: int) -> dict[str, Path]:
    """CLIP_benchmark WebDataset sets of 16 images: normal, with a sparse member, gzip-compressed."""
    from synthetic import write_shards

    members = [
        (n.replace(".txt", ".cls"), b"0" if n.endswith(".txt") else d)
        for n, d in members_of(write_shards(root / "src", [16])[0])
        if n.endswith((".jpg", ".txt"))
    ]
    tars = {
        "normal": plain_tar(members),
        "sparse": sparse_tar([], members[0][0], 2 * bomb_bytes, members[1:]),
        "gzip": zero_member_gzip(members[0][0], bomb_bytes),
    }
    sets = {}
    for case, data in tars.items():
        write(root / "eval" / case / "test" / "0.tar", data)
        (root / "eval" / case / "classnames.txt").write_text("shape\n")
        sets[case] = root / "eval" / case
    return sets


def shard_bombs(bomb_bytes: int) -> dict:
    """Peak memory of each reader on normal, sparse and gzip shards, one fresh process each."""
    import tempfile

    result = {"sparse_expanded_bytes": 2 * bomb_bytes, "gzip_member_bytes": bomb_bytes, "target_ratio": 1.2}
    with tempfile.TemporaryDirectory() as folder:
        for kind, sets in (
            ("loader", loader_sets(Path(folder), bomb_bytes)),
            ("eval", eval_sets(Path(folder), bomb_bytes)),
        ):
            runs = {case: peak_of(start_process(READER, kind, str(path))) for case, path in sets.items()}
            sizes = {case: sum(p.stat().st_size for p in path.rglob("*.tar")) for case, path in sets.items()}
            ratios = {case: round(runs[case]["peak_mb"] / runs["normal"]["peak_mb"], 3) for case in ("sparse", "gzip")}
            result[kind] = {"runs": runs, "tar_bytes": sizes, "ratio": ratios}
    return result


MEASUREMENTS = ("memory", "trickle", "shards")


def measure(name: str, small: bool) -> dict:
    if name == "memory":
        return memory(8000 if small else 20000)
    if name == "trickle":
        return trickle(3.0 if small else 5.0, 2.0)
    return shard_bombs((64 if small else 512) << 20)


def save(result: dict, only: str | None) -> Path:
    """Write the results file; ``--only`` updates its own section of the existing one."""
    out = ROOT / "bench" / "results" / "hostile.json"
    if only and out.is_file():
        result = {
            **json.loads(out.read_text()),
            only: result[only],
            f"{only}_machine": {k: result[k] for k in ("machine", "load_before", "load_after")},
        }
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick run: smaller bombs, shorter timeout")
    parser.add_argument("--only", choices=MEASUREMENTS, help="run one of the measurements")
    args = parser.parse_args()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_before": os.getloadavg()}
    for name in [args.only] if args.only else MEASUREMENTS:
        result[name] = measure(name, args.small)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if not args.small:
        print(f"wrote {save(result, args.only)}")


if __name__ == "__main__":
    main()
