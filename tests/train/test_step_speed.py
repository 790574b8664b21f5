"""The step's speed options and what the loop reports about its own pace: time blocked on the
loader, device reads kept out of the step, fused AdamW and channels-last switches."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny_config
from synthetic import write_shards

from lightclip.checkpoint import run_metrics
from lightclip.models import build_image_encoder
from lightclip.trainconfig import OptimConfig, RunConfig, TrainConfig
from lightclip.training import DistInfo, build_parts, resolve_config, train, train_step
from lightclip.training.metrics import DataWait, LogWindow
from lightclip.training.optim import build_optimizer
from lightclip.training.parts import wants_channels_last
from pipeline.base.configs import from_dict, load_recipe
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.stream import StreamLoader

CUDA = torch.device("cuda")  # a device object only: nothing here runs on a GPU


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, [16, 16])
    return folder


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_data_wait_counts_only_the_time_blocked_in_next():
    clock = FakeClock()
    waits = DataWait(clock)
    assert waits.run_fraction() is None

    def slow_batches():
        for index in range(3):
            clock.now += 0.3  # the loader takes 0.3 s to hand over each batch
            yield index

    batches = slow_batches()
    for expected in range(2):
        assert waits.next(batches) == expected
        clock.now += 0.1  # the step itself
    assert waits.take_window() == pytest.approx(0.6)
    assert waits.take_window() == 0.0  # a new window starts empty
    waits.next(batches)
    clock.now += 0.1
    assert waits.take_window() == pytest.approx(0.3)
    assert waits.run_fraction() == pytest.approx(0.9 / 1.2)  # the first wait counts from its start
    with pytest.raises(StopIteration):
        waits.next(batches)


def test_log_window_fraction_is_wait_over_wall_time_and_at_most_one():
    assert LogWindow(2, 4.0, 1.0).data_wait_fraction == pytest.approx(0.25)
    assert LogWindow(1, 0.0, 0.0).data_wait_fraction == 0.0
    assert LogWindow(1, 1.0, 1.0 + 1e-6).data_wait_fraction == 1.0  # clocks read apart


@pytest.mark.timeout(300)
def test_a_slow_loader_shows_in_every_log_row_and_the_summary(shards, tmp_path, monkeypatch, caplog):
    epoch = StreamLoader.epoch

    def slow_epoch(self, *args, **kwargs):
        for batch in epoch(self, *args, **kwargs):
            time.sleep(1.5)  # far longer than a tiny step
            yield batch

    monkeypatch.setattr(StreamLoader, "epoch", slow_epoch)
    cfg = tiny_config(
        shards,
        tmp_path / "run",
        "optim.batch_size=8",
        "optim.max_steps=3",
        "data.workers=0",
        "model.image_encoder=resnet18",
        "loss.token_weight=0",
        "loss.mlm_weight=0",
    )
    with caplog.at_level(logging.INFO, logger="lightclip.training"):
        result = train(cfg)
    rows = [json.loads(line) for line in run_metrics(tmp_path / "run").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert all(0.3 < row["data_wait_fraction"] <= 1.0 for row in rows), rows
    assert 0.3 < result.data_wait_fraction <= 1.0
    assert any("waited for data" in r.message and "the loader is the limit" in r.message for r in caplog.records)


def clip_config(shards: Path, tmp_path: Path, *overrides: str) -> TrainConfig:
    cfg = tiny_config(
        shards,
        tmp_path,
        "model.image_encoder=resnet18",
        "loss.token_weight=0",
        "loss.mlm_weight=0",
        "loss.label_mode=one_hot",
        *overrides,
    )
    return resolve_config(cfg, CaptionTokenizer.from_file(shards, 16))


def test_the_step_leaves_its_terms_on_the_device_until_they_are_read(shards, tmp_path, monkeypatch):
    cfg = clip_config(shards, tmp_path, "optim.fused=true")  # torch's loop AdamW reads its CPU step counts
    parts = build_parts(cfg, DistInfo())
    batch = [(torch.randn(4, 3, 32, 32), torch.randint(4, cfg.model.text.vocab_size, (4, 16)))]
    reads: list[str] = []
    for name in ("__float__", "__bool__", "__int__", "item", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _n=name, _f=original: reads.append(_n) or _f(self, *a))
    result = train_step(parts, cfg, DistInfo(), batch, 0, 10)
    # one read for the outputs' finiteness, one for the terms', the padding trim on the CPU
    # tokens (once: the forward takes them trimmed); before: a read per output, per term and per
    # logged value
    assert sorted(reads) == ["__bool__", "__bool__", "__int__"], reads
    assert set(result.values) == {"instance", "instance_onehot", "loss"}
    assert all(torch.is_tensor(v) and v.ndim == 0 for v in result.values.values())
    reads.clear()
    terms = result.terms  # read on logging steps only
    assert reads.count("__float__") == 3 and isinstance(terms["loss"], float) and terms["loss"] > 0


def test_fused_adamw_on_request_and_on_a_gpu_by_default():
    model = torch.nn.Linear(4, 4)
    assert build_optimizer(model, OptimConfig(fused=True), torch.device("cpu")).defaults["fused"] is True
    assert not build_optimizer(model, OptimConfig(), torch.device("cpu")).defaults["fused"]  # CPU results unchanged
    assert not build_optimizer(model, OptimConfig(fused=False), CUDA).defaults["fused"]
    assert build_optimizer(model, OptimConfig(fused="auto"), CUDA).defaults["fused"] is True


@pytest.mark.parametrize("encoder,on_gpu", [("resnet18", True), ("mobilenet_v2", True), ("swin_nano", False)])
def test_channels_last_by_default_for_convolutional_encoders_on_a_gpu_only(encoder, on_gpu):
    tower = build_image_encoder(encoder, 64)
    assert wants_channels_last(RunConfig(), tower, CUDA) is on_gpu
    assert wants_channels_last(RunConfig(), tower, torch.device("cpu")) is False
    assert wants_channels_last(RunConfig(channels_last=True), tower, torch.device("cpu")) is True
    assert wants_channels_last(RunConfig(channels_last=False), tower, CUDA) is False


def test_channels_last_changes_the_memory_layout_not_the_features():
    torch.manual_seed(0)
    tower = build_image_encoder("resnet18", 64).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = tower(images)
        tower.use_channels_last()
        after = tower(images)
    conv = tower.stages[0][0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert after[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(before, after, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_recipes_switch_both_options_from_the_command_line():
    cfg = from_dict(
        TrainConfig, load_recipe("recipes/train/tiny.yaml", ["optim.fused=false", "run.channels_last=true"])
    )
    assert cfg.optim.fused is False and cfg.run.channels_last is True
    assert from_dict(TrainConfig, load_recipe("recipes/train/tiny.yaml", [])).run.channels_last == "auto"
