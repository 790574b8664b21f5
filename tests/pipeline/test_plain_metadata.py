"""The default recipe (YFCC15M-V2, which keeps YFCC's ``filename``) reads a plain url/caption
file with no override: a keep column the file lacks is left out with a note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lightclip_demo.localserver import LocalServer
from pipeline.base import shards
from pipeline.base.configs import from_dict, load_recipe
from pipeline.build import BuildConfig, build
from pipeline.buildconfig import with_present_columns
from pipeline.metadata import check_metadata_path

REPO = Path(__file__).resolve().parents[2]
YFCC = str(REPO / "recipes" / "data" / "yfcc15m_v2.yaml")


def _config(*overrides: str) -> BuildConfig:
    return from_dict(BuildConfig, load_recipe(YFCC, list(overrides)))


def test_default_recipe_accepts_a_plain_file_and_notes_the_missing_column(tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"url": "http://example.com/a.jpg", "caption": "a red bus"}) + "\n")
    config = _config(f"metadata.path={plain}")
    assert config.metadata.keep_columns == ["filename"]
    check_metadata_path(config.metadata)
    notes: list[str] = []
    resolved = with_present_columns(config, notes.append)
    assert resolved.metadata.keep_columns == [] and config.metadata.keep_columns == ["filename"]
    assert notes == [f"metadata.keep_columns: ['filename'] not in {plain}; left out of key.json"]


def test_yfcc_rows_keep_their_filename(tmp_path):
    yfcc = tmp_path / "yfcc.json"
    yfcc.write_text(json.dumps({"url": "http://example.com/a.jpg", "caption": "a red bus", "filename": "a.jpg"}) + "\n")
    notes: list[str] = []
    assert with_present_columns(_config(f"metadata.path={yfcc}"), notes.append).metadata.keep_columns == ["filename"]
    assert notes == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_plain_file_builds_with_the_default_recipe(tmp_path):
    for i in range(4):
        Image.new("RGB", (80, 60), (40 * i, 90, 160)).save(tmp_path / f"{i}.jpg")
    with LocalServer(tmp_path) as server:
        plain = tmp_path / "plain.jsonl"
        plain.write_text(
            "".join(json.dumps({"url": server.url(f"/{i}.jpg"), "caption": f"a photo {i}"}) + "\n" for i in range(4))
        )
        out = tmp_path / "out"
        config = _config(
            f"metadata.path={plain}",
            f"output={out}",
            f"filters.allow_hosts=['{server.host_port}']",
            "augment.variants=0",
            "augment.methods=[swap]",
            "tokenizer.vocab_size=300",
            "cluster.n_workers=1",
            "cluster.processes=false",
            "progress=false",
        )
        result = build(config, log=lambda _: None)
    assert result.total_samples == 4
    sample = next(shards.iter_samples(shards.shard_paths(out)[0]))
    assert "filename" not in json.loads(sample["json"])
