"""Shard names are data, never commands: a manifest names files inside its folder, nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from synthetic import write_shards

from pipeline.base import shards
from pipeline.base.augment_image import MoCoConfig
from pipeline.base.shards import ShardSpecError
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream import StreamConfig, build_loader

PWNED_NAME = "pipe:touch PWNED; cat 00000.tar #/x.tar"


def set_names(folder: Path, names: list) -> None:
    manifest = json.loads((folder / shards.MANIFEST_FILE).read_text())
    manifest[shards.MANIFEST_SHARDS] = [{"name": n, "samples": 4} for n in names]
    (folder / shards.MANIFEST_FILE).write_text(json.dumps(manifest))


def loader(folder: str, **kw):
    cfg = StreamConfig(shards=folder, workers=0, shuffle_buffer=0, image=MoCoConfig(size=16), **kw)
    return build_loader(cfg, CaptionTokenizer.from_file(Path(folder), context_length=16), 2)


@pytest.mark.timeout(60)
def test_pipe_name_in_manifest_runs_nothing(tmp_path, monkeypatch):
    write_shards(tmp_path, [4])
    weird = tmp_path / "pipe:touch PWNED; cat 00000.tar #"  # the folder the name needs
    weird.mkdir()
    (weird / shards.SIZES_FILE).write_text(json.dumps({"x.tar": 4}))
    set_names(tmp_path, [PWNED_NAME])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ShardSpecError, match="plain file names inside the shard folder"):
        loader(".")
    with pytest.raises(ShardSpecError):
        shards.expand_spec(".")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "name",
    [
        "../00000.tar",
        "/etc/hostname",
        "http://127.0.0.1:1/0.tar",
        "file:00000.tar",
        "a/../../x.tar",
        "",
        "sub\\..\\x.tar",
    ],
)
def test_manifest_names_outside_the_folder_are_refused(tmp_path, name):
    write_shards(tmp_path / "ds", [4])
    set_names(tmp_path / "ds", [name])
    with pytest.raises(ShardSpecError, match="shard"):
        shards.expand_spec(str(tmp_path / "ds"))


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    write_shards(tmp_path / "ds", [4])
    (tmp_path / "outside.tar").write_bytes(b"")
    os.symlink(tmp_path / "outside.tar", tmp_path / "ds" / "00001.tar")
    set_names(tmp_path / "ds", ["00000.tar", "00001.tar"])
    with pytest.raises(ShardSpecError, match="outside"):
        shards.expand_spec(str(tmp_path / "ds"))


@pytest.mark.parametrize(
    "value",
    [
        "00000.tar",
        {"name": "00000.tar"},
        [1, 2],
        [{"name": 5, "samples": 1}],
        [{"name": "00000.tar", "samples": "4"}],
        [{"name": "00000.tar", "samples": -1}],
    ],
)
def test_manifest_types_are_checked(tmp_path, value):
    write_shards(tmp_path, [4])
    manifest = json.loads((tmp_path / shards.MANIFEST_FILE).read_text())
    manifest[shards.MANIFEST_SHARDS] = value
    (tmp_path / shards.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ShardSpecError, match=shards.MANIFEST_FILE):
        shards.expand_spec(str(tmp_path))


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", '{"00000.tar": [4]}', '{"00000.tar": true}'])
def test_bad_sizes_json_is_one_user_error(tmp_path, text):
    write_shards(tmp_path, [4])
    (tmp_path / shards.SIZES_FILE).write_text(text)
    with pytest.raises(ShardSpecError, match=shards.SIZES_FILE):
        loader(str(tmp_path))


def test_every_shard_is_a_local_path(tmp_path, monkeypatch):
    write_shards(tmp_path / "ds", [4, 4])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ds" / shards.MANIFEST_FILE).unlink()
    for spec in ("ds", "ds/{00000..00001}.tar", str(tmp_path / "ds")):
        urls = shards.expand_spec(spec)
        assert len(urls) == 2 and all(u.startswith(("./", "/")) for u in urls), urls


@pytest.mark.parametrize(
    "spec", ["pipe:cat ds/00000.tar", "http://127.0.0.1:1/{0..1}.tar", "s3://bucket/x.tar", "file:///tmp/x.tar"]
)
def test_user_specs_with_a_scheme_are_refused(tmp_path, spec):
    with pytest.raises(ShardSpecError, match="allow_pipe"):
        shards.expand_spec(spec)


def test_user_pipe_spec_allowed_when_asked(tmp_path):
    paths = write_shards(tmp_path, [4, 4])
    spec = f"pipe:cat {tmp_path}/{{00000..00001}}.tar"
    assert shards.expand_spec(spec, allow_pipe=True) == [f"pipe:cat {p}" for p in paths]
    cfg = StreamConfig(
        shards=spec, allow_pipe=True, workers=0, shuffle_buffer=0, samples_per_epoch=8, image=MoCoConfig(size=16)
    )
    batches = list(build_loader(cfg, CaptionTokenizer.from_file(tmp_path, context_length=16), 2).epoch(0))
    assert len(batches) == 4


def test_trainer_start_up_check_follows_allow_pipe(tmp_path):
    from lightclip.training.session import check_shards

    paths = write_shards(tmp_path, [4])
    check_shards(f"pipe:cat {paths[0]}", allow_pipe=True)
    with pytest.raises(ShardSpecError, match="allow_pipe"):
        check_shards(f"pipe:cat {paths[0]}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_shards(str(tmp_path / "{00005..00006}.tar"))
