"""Download one unit of rows with img2dataset's in-process classes (threads only).

img2dataset's ``download()`` cannot run inside a Dask worker (it installs a SIGINT handler and
forks processes), so its ``Downloader`` and ``Resizer`` are driven directly, with the unit
writer of :mod:`pipeline.unitfiles` and, in place of its fetch, :func:`pipeline.fetch.guarded_download_image`:
every connection (first hop and each redirect) is checked by :mod:`pipeline.urlguard`, a download
has one deadline and a byte cap, and images are measured from their header before anything
decodes them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.fetch import guarded_download_image
from pipeline.startup import img2dataset_downloader
from pipeline.unitfiles import (
    INPUT_FILE,
    KEPT,
    SAMPLES_FILE,
    UnitResult,
    UnitWriter,
    is_done,
    read_result,
    write_marker,
)


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
        guarded_download_image,
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
    write_marker(folder, result)
    return result
