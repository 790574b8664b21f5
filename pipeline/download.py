"""Download one unit of rows with img2dataset's in-process classes (threads only).

A unit is a folder: ``images.bin`` (the resized JPEGs back to back), ``samples.parquet`` (one
row per input row: key, status, error, sizes, offset/length into images.bin) and ``_SUCCESS``,
written last. A unit without ``_SUCCESS`` is wiped and downloaded again; one with it is skipped.

img2dataset's ``download()`` cannot run inside a Dask worker (it installs a SIGINT handler and
forks processes), so its ``Downloader`` and ``Resizer`` are driven directly with a writer of
our own. Redirects are checked against the same URL guard as the metadata, so an allowed host
cannot bounce the crawler into the local network.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.filters import parse_allow_hosts, url_problem

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
_RESIZE_ERRORS = {
    "image too small": IMAGE_TOO_SMALL,
    "image area too large": IMAGE_TOO_LARGE,
    "aspect ratio too large": BAD_ASPECT_RATIO,
}
SAMPLE_COLUMNS = ("key", "status", "error", "width", "height", "original_width",
                  "original_height", "offset", "length")


@dataclass
class DownloadConfig:
    """img2dataset settings. ``max_image_area`` / ``max_aspect_ratio`` 0 mean no limit.

    ``resize_mode`` ``keep_ratio`` makes the shorter side ``image_size``.
    ``samples_per_unit`` rows form one Dask task with its own completion marker.
    """

    image_size: int = 256
    resize_mode: str = "keep_ratio"
    resize_only_if_bigger: bool = False
    encode_quality: int = 95
    min_image_size: int = 0
    max_image_area: float = 0.0
    max_aspect_ratio: float = 0.0
    timeout: float = 10.0
    retries: int = 0
    thread_count: int = 32
    samples_per_unit: int = 10000
    user_agent_token: str | None = None
    disallowed_header_directives: list[str] = field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"]
    )


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
    if img2dataset_status == "failed_to_resize":
        return _RESIZE_ERRORS.get(error or "", DECODE_FAILED)
    return DOWNLOAD_FAILED


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
        self.rows.append({
            "key": meta["sample_key"],
            "status": status_of(meta.get("status"), meta.get("error_message")),
            "error": meta.get("error_message") or "",
            "width": meta.get("width") or 0,
            "height": meta.get("height") or 0,
            "original_width": meta.get("original_width") or 0,
            "original_height": meta.get("original_height") or 0,
            "offset": offset if img_str is not None else -1,
            "length": len(img_str) if img_str is not None else 0,
        })

    def close(self) -> None:
        self.blob.close()
        frame = pd.DataFrame(self.rows, columns=list(SAMPLE_COLUMNS))
        frame.sort_values("key").to_parquet(self.folder / SAMPLES_FILE, index=False)


# ------------------------------------------------------------------ redirect guard

class GuardedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only when its target passes :func:`pipeline.filters.url_problem`."""

    def __init__(self, allow_hosts: frozenset):
        super().__init__()
        self.allowed = allow_hosts

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        problem = url_problem(newurl, self.allowed)
        if problem:
            raise urllib.error.HTTPError(newurl, code, f"redirect refused ({problem})", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@lru_cache(maxsize=16)
def _opener(allow_hosts: tuple[str, ...]) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(GuardedRedirects(parse_allow_hosts(list(allow_hosts))))


def _guarded_download_image(row, timeout, user_agent_token, disallowed_header_directives,
                            allow_hosts: tuple[str, ...]):
    """img2dataset's ``download_image`` with the redirect guard (same return contract)."""
    import io

    from img2dataset.downloader import is_disallowed

    key, url = row
    agent = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
    if user_agent_token:
        agent += f" (compatible; {user_agent_token}; +https://github.com/rom1504/img2dataset)"
    try:
        request = urllib.request.Request(url, data=None, headers={"User-Agent": agent})
        with _opener(allow_hosts).open(request, timeout=timeout) as response:
            if disallowed_header_directives and is_disallowed(
                response.headers, user_agent_token, disallowed_header_directives
            ):
                return key, None, "Use of image disallowed by X-Robots-Tag directive"
            return key, io.BytesIO(response.read()), None
    except Exception as err:  # noqa: BLE001 - every failure is a row status
        return key, None, str(err)


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


def download_unit(rows: pd.DataFrame, folder: str | Path, config: DownloadConfig,
                  allow_hosts: tuple[str, ...] = ()) -> UnitResult:
    """Download ``rows`` (key, url, caption) into ``folder``; skipped when already done."""
    import img2dataset.downloader as i2d

    folder = Path(folder)
    if is_done(folder):
        return read_result(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    table = pa.table({
        "sample_key": pa.array(rows["key"].astype(str).tolist(), pa.string()),
        "caption": pa.array(rows["caption"].astype(str).tolist(), pa.string()),
        "url": pa.array(rows["url"].astype(str).tolist(), pa.string()),
    })
    with pa.OSFile(str(folder / INPUT_FILE), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    i2d.download_image = partial(_guarded_download_image, allow_hosts=tuple(allow_hosts))
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
