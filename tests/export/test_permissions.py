"""Checkpoints and export folders get the modes of ordinary new files (the umask decides), and
the export says what it is doing while it runs."""

from __future__ import annotations

import logging
import os
import stat
from contextlib import contextmanager

import pytest
import torch
from export_fixtures import tiny_config, write_tokenizer

from lightclip.checkpoint import load_checkpoint, save_checkpoint
from lightclip.export import (
    CONFIG_FILE,
    IMAGE_ONNX,
    TEXT_ONNX,
    WEIGHTS_FILE,
    ExportConfig,
    export_model,
)
from lightclip.task import LightCLIP
from pipeline.base.tokenizer import TOKENIZER_FILE


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_checkpoint_file_mode_follows_the_umask(tmp_path, mask, expected):
    with umask(mask):
        path = save_checkpoint({"step": 3, "weights": torch.ones(2)}, tmp_path / "step_3.pt")
    assert mode(path) == expected
    assert load_checkpoint(path)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["step_3.pt"]


@pytest.mark.parametrize(("mask", "dir_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_export_folder_mode_follows_the_umask(tmp_path, mask, dir_mode, file_mode, caplog):
    config = tiny_config("mobilenet_v2", image_size=32)
    tokenizer = write_tokenizer(tmp_path / TOKENIZER_FILE)
    caplog.set_level(logging.INFO, logger="lightclip.export")
    with umask(mask):
        out = export_model(
            LightCLIP(config), config, tokenizer, tmp_path / "export", ExportConfig(exporter="torchscript")
        )
    assert mode(out) == dir_mode
    assert {p.name: mode(p) for p in out.iterdir()} == dict.fromkeys(
        [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE, IMAGE_ONNX, TEXT_ONNX], file_mode
    )
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("mobilenet_v2 inference model:") for m in messages)
    for tower in ("image", "text"):
        before = next(i for i, m in enumerate(messages) if m.startswith(f"{tower} tower -> ONNX"))
        after = next(i for i, m in enumerate(messages) if m.startswith(f"{tower} tower: torchscript exporter"))
        assert before < after
