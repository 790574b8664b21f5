"""Shard names, atomic reproducible writes, manifest/sizes, and `verify` catching damage."""

import io
import json

import pytest
import webdataset as wds
from PIL import Image

from pipeline.base import shards, verify
from pipeline.cli import main


def _jpeg(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def _samples(start, count):
    return [
        shards.Sample(
            key=f"{i:012d}",
            image=_jpeg((i, 0, 0)),
            caption=f"caption {i}",
            meta={"url": f"http://e.com/{i}.jpg", "width": 16, "height": 12},
            variants=[f"variant {i} a", f"variant {i} b"],
        )
        for i in range(start, start + count)
    ]


def _build_dir(directory):
    infos = [shards.write_shard(directory, 0, _samples(0, 3)), shards.write_shard(directory, 1, _samples(3, 2))]
    shards.write_manifest(directory, infos, {"variants": 2})
    return infos


def test_names_and_plan():
    assert shards.shard_name(7) == "00007.tar"
    assert shards.shard_pattern(42) == "{00000..00041}.tar"
    assert shards.shard_pattern(1) == "00000.tar"
    assert [(r.start, r.stop) for r in shards.plan_shards(25, 10)] == [(0, 10), (10, 20), (20, 25)]
    assert shards.plan_shards(0, 10) == []
    with pytest.raises(ValueError):
        shards.plan_shards(5, 0)


def test_shards_read_by_webdataset_and_reproducible(tmp_path):
    infos = _build_dir(tmp_path)
    assert [i.samples for i in infos] == [3, 2]
    assert json.loads((tmp_path / "sizes.json").read_text()) == {"00000.tar": 3, "00001.tar": 2}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["pattern"] == "{00000..00001}.tar" and manifest["total_samples"] == 5
    urls = str(tmp_path / manifest["pattern"])
    rows = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("jpg", "txt", "variants.json"))
    assert [r[1] for r in rows] == [f"caption {i}" for i in range(5)]
    assert rows[4][2] == ["variant 4 a", "variant 4 b"]
    again = shards.write_shard(tmp_path / "..", 0, _samples(0, 3))
    assert again.sha256 == infos[0].sha256  # byte-reproducible
    assert not list(tmp_path.glob("*.tmp"))


def test_dot_in_key_is_refused(tmp_path):
    bad = shards.Sample("a.b", _jpeg((0, 0, 0)), "c", {}, [])
    with pytest.raises(ValueError, match="dot"):
        shards.write_shard(tmp_path, 0, [bad])


def test_verify_passes_clean_output(tmp_path, capsys):
    _build_dir(tmp_path)
    assert verify.verify_directory(tmp_path) == []
    assert main(["verify", str(tmp_path)]) == 0


def test_verify_catches_truncated_shard(tmp_path, capsys):
    _build_dir(tmp_path)
    path = tmp_path / "00000.tar"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    problems = verify.verify_directory(tmp_path)
    assert any("00000.tar: sha256" in p for p in problems)
    assert any("00000.tar" in p and ("unreadable" in p or "samples, manifest" in p) for p in problems)
    assert main(["verify", str(tmp_path)]) == 1
    assert "problem" in capsys.readouterr().out


def test_verify_catches_count_mismatch_and_partial_files(tmp_path):
    _build_dir(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["shards"][1]["samples"] = 3
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "00002.tar.tmp").write_bytes(b"partial")
    problems = verify.verify_directory(tmp_path)
    assert "00001.tar: 2 samples, manifest.json says 3" in problems
    assert any("total_samples" in p for p in problems)
    assert "sizes.json disagrees with manifest.json" in problems
    assert "00002.tar.tmp: partial file from an interrupted build" in problems
    assert shards.remove_partial(tmp_path) == ["00002.tar.tmp"]


def test_verify_catches_undecodable_image(tmp_path):
    sample = _samples(0, 1)[0]
    sample.image = b"\xff\xd8 not a jpeg"
    info = shards.write_shard(tmp_path, 0, [sample])
    shards.write_manifest(tmp_path, [info], {})
    problems = verify.verify_directory(tmp_path)
    assert len(problems) == 1 and "sample 000000000000" in problems[0]


def test_stats_and_verify_on_missing_dir(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert main(["stats", str(tmp_path)]) == 2
    assert "python -m pipeline build" in capsys.readouterr().err


def _hostile():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stream"))
    import hostile_tars

    return hostile_tars


def test_verify_names_sparse_members_and_compressed_shards(tmp_path):
    hostile = _hostile()
    _build_dir(tmp_path)
    first = hostile.members_of(tmp_path / "00000.tar")
    (tmp_path / "00000.tar").write_bytes(hostile.sparse_tar([], first[0][0], 1 << 30, first[1:]))
    (tmp_path / "00001.tar").write_bytes(hostile.gzip_tar(hostile.members_of(tmp_path / "00001.tar")))
    problems = verify.verify_directory(tmp_path)
    assert any("sample 000000000000: 000000000000.jpg: sparse member (1073741824 bytes" in p for p in problems)
    assert any("00001.tar: unreadable tar after 0 samples" in p and "gzip-compressed" in p for p in problems)


def test_verify_with_a_malformed_manifest_is_one_line(tmp_path, capsys):
    _build_dir(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["shards"] = "00000.tar"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "manifest.json: 'shards' must be a list" in err
