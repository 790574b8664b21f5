"""Per-row outcomes: every input row's final status and error next to the shards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pipeline_world import make_world, recipe

from pipeline import outcomes, unitfiles
from pipeline.base.configs import from_dict, load_recipe
from pipeline.build import WORK_DIR, BuildConfig, build
from pipeline.filters import FilterConfig

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "recipes" / "data" / "demo.yaml")


def _rows() -> pd.DataFrame:
    keys = [f"{i:012d}" for i in range(6)]
    return pd.DataFrame(
        {
            "key": keys,
            "url": ["u0", "u1", "u2", "u3", None, "u5"],
            "original_caption": ["a cat", "a dog", "one", "a bird", None, "a b c"],
            "caption": ["a cat", "a dog", "one", "a bird", None, "a b c"],
            "status": ["kept", "kept", "too_few_words", "duplicate_url", "bad_row", "kept"],
            "reason": ["", "", "", "", "invalid JSON (x) (byte 40)", ""],
        }
    )


def _samples() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": ["000000000000", "000000000001"],
            "status": ["kept", "download_failed"],
            "error": ["", "HTTP Error 404: Not Found"],
            "width": [64, 0],
            "height": [48, 0],
            "original_width": [640, 0],
            "original_height": [480, 0],
            "offset": [0, -1],
            "length": [10, 0],
        }
    )


def test_every_row_gets_its_status_error_and_sizes():
    frame = outcomes.partition_outcomes(_rows(), _samples(), FilterConfig(min_words=2))
    assert list(frame.columns) == list(outcomes.COLUMNS)
    assert list(frame["status"]) == [
        "kept",
        "download_failed",
        "too_few_words",
        "duplicate_url",
        "bad_row",
        "download_failed",
    ]
    assert list(frame["error"]) == [
        "",
        "HTTP Error 404: Not Found",
        "1 words; filters.min_words is 2",
        "the same URL as an earlier row",
        "bad line: invalid JSON (x) (byte 40)",
        outcomes.NO_RECORD,
    ]
    assert frame.loc[0, ["width", "original_width", "original_height"]].tolist() == [64, 640, 480]
    assert frame.loc[4, "url"] is None


def test_summary_and_read_back(tmp_path):
    frame = outcomes.partition_outcomes(_rows(), _samples(), FilterConfig(min_words=2))
    assert outcomes.write_outcomes(tmp_path, 0, frame) == {
        "download_failed": 2,
        "kept": 1,
        "too_few_words": 1,
        "duplicate_url": 1,
        "bad_row": 1,
    }
    back = outcomes.read_outcomes(tmp_path)
    assert back.equals(frame)
    text = outcomes.summary(back, "download_failed")
    assert text.splitlines()[0].startswith("6 rows: 2 download_failed")
    assert "HTTP Error 404: Not Found" in text and outcomes.NO_RECORD in text
    with pytest.raises(FileNotFoundError, match="rows"):
        outcomes.read_outcomes(tmp_path / "nothing")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_build_records_every_row_and_keeps_them_without_work(tmp_path):
    world = make_world(tmp_path / "world")
    hostile = [b"[" * 50_000 + b"]" * 50_000, b'{"url": "http://127.0.0.1:9/s.jpg", "caption": "x \\ud800"}']
    with open(world.metadata, "ab") as out:
        out.write(b"\n".join(hostile) + b"\n")
    out = tmp_path / "out"
    overrides = recipe(world, out, n_workers=1, processes="false") + [
        "keep_work=false",
        "augment.variants=0",
        "augment.methods=[swap]",
    ]
    try:
        result = build(from_dict(BuildConfig, load_recipe(DEMO, overrides)), log=lambda _: None)
    finally:
        world.server.stop()
    assert not (out / WORK_DIR).exists()
    rows = outcomes.read_outcomes(out)
    lines = world.metadata.read_bytes().count(b"\n")
    assert len(rows) == lines == result.stats["total_rows"]
    counts = rows["status"].value_counts().to_dict()
    assert counts == {k: v for k, v in result.stats["statuses"].items() if v}
    assert counts["bad_row"] == 2 and counts["kept"] == result.total_samples
    by_url = dict(zip(rows["url"], rows["error"]))
    assert by_url[world.server.url("missing.jpg")] == "HTTP Error 404: Not Found"
    assert by_url[world.server.url("error.jpg")] == "HTTP Error 500: Internal Server Error"
    assert by_url[world.server.url("slow.jpg")] == "timed out"
    assert by_url[world.server.url("huge.jpg")].startswith(f"{unitfiles.IMAGE_AREA_ERROR} (1100x1000, ")
    assert by_url[world.server.url("tiny.jpg")] == "image too small (1x1; download.min_image_size is 8)"
    assert by_url["ftp://example.com/a.jpg"] == "unsafe URL (scheme)"
    bad = rows[rows["status"] == "bad_row"]["error"].tolist()
    assert bad[0].startswith("bad line: JSON nested 50000 deep") and "surrogate" in bad[1]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "rejects", str(out), "--status", "download_failed"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "HTTP Error 404: Not Found" in done.stdout
    assert json.loads((out / "stats.json").read_text())["total_rows"] == lines
