"""Every numeric build setting is checked at start-up: one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.bounds import range_problem
from pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "recipes" / "data" / "demo.yaml")


@pytest.fixture
def metadata(tmp_path):
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps({"url": "http://127.0.0.1:9/a.jpg", "caption": "a red square"}) + "\n")
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "setting",
    [
        "download.thread_count=0",
        "cluster.n_workers=-1",
        "cluster.threads_per_worker=0",
        "download.timeout=0",
        "download.timeout=.nan",
        "download.retries=-1",
        "download.image_size=0",
        "download.encode_quality=101",
        "download.max_bytes=-5",
        "download.samples_per_unit=0",
        "shards.samples_per_shard=0",
        "tokenizer.vocab_size=10",
        "augment.variants=-1",
        "download.max_image_area=.inf",
        "filters.min_words=-1",
        "filters.max_words=3 filters.min_words=5",
        "metadata.blocksize=lots",
        "metadata.blocksize=0",
        "download.resize_mode=squash",
        "augment.synonym.min_sense_share=2",
        "augment.swap.aug_p=-0.1",
        "filters.min_latin_share=1.5",
        "metadata.max_line_bytes=0",
        "metadata.max_json_depth=0",
    ],
)
def test_a_bad_setting_is_one_line_and_nothing_is_written(setting, metadata, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["build", "--recipe", DEMO, f"output={out}", f"metadata.path={metadata}", "progress=false", *setting.split()]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert setting.split()[0].split("=")[0] in err
    assert not out.exists()


def test_range_problem():
    assert range_problem(1, 1, None) == ""
    assert range_problem(0, 1, 10) == "must be at least 1 and at most 10"
    assert range_problem(11, 1, 10) == "must be at most 10"
    assert range_problem(float("nan"), 0, None) == "must be a finite number"
    assert range_problem(True, 0, None) == "must be a number"


def test_every_numeric_build_setting_has_a_bound():
    from pipeline.base.confighelp import iter_settings
    from pipeline.buildconfig import BOUNDS, BuildConfig

    bounded = {key for key, _, _ in BOUNDS}
    numeric = {s.key for s in iter_settings(BuildConfig) if s.type.split(" |")[0] in ("int", "float")}
    assert numeric - bounded == set()
