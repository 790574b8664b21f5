"""What a build refuses or cleans up: an empty result, a different recipe over a finished
output, and the work folder when ``keep_work`` is false."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lightclip_demo.localserver import LocalServer
from pipeline.base import shards, verify
from pipeline.base.configs import from_dict, load_recipe
from pipeline.build import WORK_DIR, BuildConfig, BuildError, build
from pipeline.cli import main

pytestmark = pytest.mark.slow
CAPTIONS = ["a red square", "a blue circle on a table", "a green triangle in the grass", "a small yellow star"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    for i in range(12):
        Image.new("RGB", (70, 60), (20 * i, 90, 160)).save(root / f"{i:02d}.jpg")
    with LocalServer(root) as server:
        rows = [{"url": server.url(f"/{i:02d}.jpg"), "caption": CAPTIONS[i % 4]} for i in range(12)]
        metadata = root / "metadata.jsonl"
        metadata.write_text("".join(json.dumps(r) + "\n" for r in rows))
        yield metadata


def overrides(metadata: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"metadata.path={metadata}",
        f"output={out}",
        "augment.variants=0",
        "augment.methods=[swap]",
        "progress=false",
        "cluster.n_workers=1",
        "cluster.processes=false",
        "tokenizer.vocab_size=300",
        *extra,
    ]


def config(*args: str) -> BuildConfig:
    return from_dict(BuildConfig, load_recipe("recipes/data/demo.yaml", list(args)))


def test_keep_work_false_deletes_the_work_folder_and_keeps_the_shards(served, tmp_path):
    out = tmp_path / "out"
    result = build(config(*overrides(served, out, "keep_work=false")), log=lambda _: None)
    assert result.total_samples == 12
    assert not (out / WORK_DIR).exists()
    assert verify.verify_directory(out) == []


def test_a_different_recipe_over_a_finished_output_is_refused_and_changes_nothing(served, tmp_path):
    out = tmp_path / "out"
    build(config(*overrides(served, out, "keep_work=false")), log=lambda _: None)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(BuildError, match="holds a finished build .12 samples. of a different recipe"):
        build(config(*overrides(served, out, "keep_work=false", "filters.min_words=4")), log=lambda _: None)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    again = build(config(*overrides(served, out, "keep_work=false")), log=lambda _: None)
    assert again.skipped and again.total_samples == 12


def test_a_build_that_keeps_nothing_fails_with_the_reason(served, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["build", "--recipe", "recipes/data/demo.yaml", *overrides(served, out, "filters.allow_hosts=[]")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [err]
    assert (
        "no sample kept: 0 of 12 rows (12 unsafe_url (local_host: 12; a host you serve yourself needs "
        "filters.allow_hosts)" in err
    )
    assert json.loads((out / shards.STATS_FILE).read_text())["statuses"]["unsafe_url"] == 12
    assert not (out / shards.MANIFEST_FILE).exists()
    assert main(["verify", str(out)]) != 0
