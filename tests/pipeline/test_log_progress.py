"""The build's task bar, ``pipeline verify``'s shard bar and the ablation's run bar write whole
lines to a log (stderr not a terminal), never carriage-return frames."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline.base import shards, verify
from pipeline.cluster import ClusterConfig, open_client, run_tasks


def double(value: int) -> int:
    return 2 * value


def assert_log_lines(captured: str, label: str) -> None:
    assert "\r" not in captured and "\x1b" not in captured, repr(captured[:300])
    lines = [line for line in captured.splitlines() if label in line]
    assert lines and all(line.strip() for line in lines), repr(captured[:300])


@pytest.mark.timeout(120)
def test_build_task_bar_writes_lines(capsys, monkeypatch):
    monkeypatch.setenv("PROGRESS_EVERY_S", "0")
    config = ClusterConfig(n_workers=1, processes=False, dashboard_address="")
    with open_client(config, log=lambda _: None) as client:
        assert run_tasks(client, [(double, (i,)) for i in range(5)], "download") == [0, 2, 4, 6, 8]
    captured = capsys.readouterr().err
    assert_log_lines(captured, "download")
    assert "5/5" in captured


def test_verify_bar_writes_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PROGRESS_EVERY_S", "0")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    samples = [
        shards.Sample(key=f"{i:012d}", image=buffer.getvalue(), caption="a caption", meta={}, variants=[])
        for i in range(2)
    ]
    shards.write_manifest(tmp_path, [shards.write_shard(tmp_path, 0, samples)], {})
    assert verify.verify_directory(tmp_path, progress=True) == []
    assert_log_lines(capsys.readouterr().err, "verify")


def test_ablation_bar_writes_lines(capsys, monkeypatch):
    from lightclip_demo import ablate

    monkeypatch.setenv("PROGRESS_EVERY_S", "0")
    monkeypatch.setattr(ablate.Job, "run", lambda job: job * 10)
    assert ablate.run_jobs([1, 2, 3], parallel=2) == [10, 20, 30]
    captured = capsys.readouterr().err
    assert_log_lines(captured, "ablation runs")
    assert "3/3" in captured
