"""One download unit on disk, the download stage's output format (img2dataset's sample writer
writes it). A unit is a folder: ``images.bin`` (the resized JPEGs back to back),
``samples.parquet`` (one row per input row: key, status, error, sizes, offset/length into
images.bin) and ``_SUCCESS``, written last: a unit without it is wiped and downloaded again, one
with it is skipped. Every row ends with one of the statuses below and, when it failed, why.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

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


def write_marker(folder: Path, result: UnitResult) -> None:
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
