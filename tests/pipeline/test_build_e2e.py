"""End to end: a served image world with every failure kind -> shards (Dask), resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webdataset as wds
from pipeline_world import make_world, recipe

from pipeline.augment_text import caption_variants
from pipeline.base import shards, verify
from pipeline.base.configs import from_dict, load_recipe
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.build import WORK_DIR, BuildConfig, build
from pipeline.cli import main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "recipes" / "data" / "demo.yaml")


def _config(overrides):
    return from_dict(BuildConfig, load_recipe(DEMO, overrides))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("world"))
    yield world
    world.server.stop()


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    overrides = recipe(world, out, n_workers=2, processes="true")
    result = build(_config(overrides), log=lambda _: None)
    return out, result, overrides


def _contents(directory):
    """Every member of every shard, by shard name (not where the shard was read from)."""
    return {
        path.name: [{k: v for k, v in sample.items() if k != "__url__"} for sample in shards.iter_samples(path)]
        for path in shards.shard_paths(directory)
    }


def test_every_row_has_one_status(world, reference):
    _, result, _ = reference
    statuses = result.stats["statuses"]
    assert {k: v for k, v in statuses.items() if v} == world.expected
    assert result.stats["total_rows"] == sum(world.expected.values())
    assert result.stats["unsafe_url_reasons"] == {"local_host": 5, "scheme": 1}
    assert set(result.stats["download_errors"]) == {
        "HTTP Error 404: Not Found",
        "HTTP Error 500: Internal Server Error",
        "timed out",
    }
    for path in world.forbidden_paths:  # local-address rows never reached the server
        assert world.server.requested(path) == 0


def test_webdataset_reads_every_kept_sample(world, reference):
    out, result, overrides = reference
    assert result.shards == ["00000.tar", "00001.tar", "00002.tar"]
    assert [s["samples"] for s in result.manifest["shards"]] == [10, 10, 5]
    urls = str(out / result.manifest["pattern"])
    rows = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "txt", "json"))
    assert [r[0] for r in rows] == world.good_keys
    assert [r[2] for r in rows] == [world.captions[k] for k in world.good_keys]
    assert all(min(r[1].size) == 64 for r in rows)  # shorter side resized, ratio kept
    assert all(r[3]["original_caption"] and r[3]["url"].startswith("http://127.0.0.1") for r in rows)
    assert "Lake+Tahoe" not in " ".join(r[2] for r in rows) and "+" not in rows[0][2]
    variants = list(wds.WebDataset(urls, shardshuffle=False).to_tuple("__key__", "txt", "variants.json"))
    config = _config(overrides).augment
    for key, caption, data in variants[:3]:
        listed = __import__("json").loads(data)
        assert len(listed) == 2 and all(v != caption.decode() for v in listed)
        assert listed == caption_variants(key, caption.decode(), config)  # deterministic
    tokenizer = CaptionTokenizer.from_file(out, context_length=16)
    assert tokenizer.vocab_size <= 300 and tokenizer.encode(["a dog"]).shape == (1, 16)


def test_verify_and_stats_on_build(reference, capsys):
    out, _, overrides = reference
    assert main(["verify", str(out)]) == 0
    assert main(["stats", str(out)]) == 0
    assert "image_too_large" in capsys.readouterr().out
    again = build(_config(overrides), log=lambda _: None)
    assert again.skipped and again.total_samples == 25


def test_resume_after_sigkill_matches_uninterrupted_build(world, reference, tmp_path):
    ref_out, _, _ = reference
    out = tmp_path / "resumed"
    overrides = recipe(world, out, n_workers=2, processes="false")  # torch loaded (the reference's workers refuse it)
    world.server.set_delay(0.1)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", "--recipe", DEMO, *overrides],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    units = out / WORK_DIR / "units"
    deadline = time.monotonic() + 300
    try:
        while not list(units.glob("*/_SUCCESS")):
            assert proc.poll() is None, "the build ended before it could be interrupted"
            assert time.monotonic() < deadline, "no download unit finished in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        world.server.set_delay(0.0)
    done = sorted(p.parent.name for p in units.glob("*/_SUCCESS"))
    assert not (out / "manifest.json").exists() and len(done) < 4
    before = world.server.requests
    result = build(_config(overrides), log=lambda _: None)
    assert not result.skipped and result.total_samples == 25
    assert _contents(out) == _contents(ref_out)
    ours = {s["name"]: s["sha256"] for s in result.manifest["shards"]}
    theirs = {s["name"]: s["sha256"] for s in shards.read_json(ref_out, "manifest.json")["shards"]}
    assert ours == theirs
    assert not list(out.glob("*.tmp")) and verify.verify_directory(out) == []
    # finished units were not fetched again (units 0-2 hold img000-img023, 8 each; img000 is
    # also the redirect target of unit 3)
    for name in done:
        unit = int(name.split("-")[1])
        for i in range(max(1, 8 * unit), 8 * unit + 8) if unit < 3 else []:
            path = f"/img{i:03d}.jpg"
            assert world.server.requests[path] == before[path], f"{path} of finished {name}"
