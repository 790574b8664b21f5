"""Export of every registered encoder: files, parity with PyTorch, what is (not) exported."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from export_fixtures import tiny_config, write_tokenizer
from safetensors import safe_open

import lightclip.export_onnx as export_onnx
from lightclip.export import (
    CONFIG_FILE,
    IMAGE_ONNX,
    TEXT_ONNX,
    TRAIN_ONLY_PREFIXES,
    WEIGHTS_FILE,
    ExportConfig,
    ExportError,
    export_model,
)
from lightclip.inference import load
from lightclip.models import CLIP, IMAGE_ENCODERS
from lightclip.task import LightCLIP
from pipeline.base.tokenizer import TOKENIZER_FILE

FAST = ExportConfig(exporter="torchscript")


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tok") / TOKENIZER_FILE)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tokenizer_file):
    """One export per registered encoder, from a LightCLIP training model (random init)."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for encoder in IMAGE_ENCODERS:
        torch.manual_seed(0)
        config = tiny_config(encoder)
        model = LightCLIP(config)
        out[encoder] = (model, config, export_model(model, config, tokenizer_file, root / encoder, FAST))
    return out


@pytest.mark.parametrize("encoder", sorted(IMAGE_ENCODERS))
def test_export_writes_every_file_and_passes_parity(exports, encoder):
    _, _, directory = exports[encoder]
    names = {p.name for p in directory.iterdir()}
    assert names == {WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE, IMAGE_ONNX, TEXT_ONNX}
    meta = json.loads((directory / CONFIG_FILE).read_text())
    assert meta["format_version"] == 1 and meta["model"]["image_encoder"] == encoder
    for tower in ("image", "text"):
        assert meta["onnx"]["towers"][tower]["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("encoder", sorted(IMAGE_ENCODERS))
def test_exported_weights_are_the_plain_clip(exports, encoder):
    model, config, directory = exports[encoder]
    with safe_open(str(directory / WEIGHTS_FILE), "pt") as f:
        names = set(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
    assert not [n for n in names if n.startswith(TRAIN_ONLY_PREFIXES) or "mlm" in n or "fusion" in n]
    plain = dict(CLIP(config).named_parameters())
    assert set(plain) <= names
    assert sum(tensors[k].numel() for k in plain) == sum(p.numel() for p in plain.values())
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in plain.values())
    for key, value in model.clip.state_dict().items():
        assert torch.equal(tensors[key], value), key


@pytest.mark.parametrize("encoder", sorted(IMAGE_ENCODERS))
def test_loaded_backends_match_the_training_model(exports, encoder):
    model, config, directory = exports[encoder]
    images = torch.randn(5, 3, config.image_size, config.image_size)
    texts = ["a photo of a cat", "a red car", "two dogs playing in the park on a sunny day"]
    with torch.no_grad():
        expected_image = model.clip.eval().encode_image(images)
    for backend in ("torch", "onnx"):
        loaded = load(directory, backend=backend)
        tokens = loaded.tokenize(texts)
        with torch.no_grad():
            expected_text = model.clip.encode_text(tokens)
        assert torch.allclose(loaded.encode_image(images), expected_image, atol=1e-4)
        assert torch.allclose(loaded.encode_text(texts), expected_text, atol=1e-4)
        # token ids (shorter than the context: padded) give the same embeddings as strings
        short = tokens[:2, :8]  # the first two captions end (EOS) before position 8
        assert (short == 3).any(dim=1).all()
        assert torch.allclose(loaded.encode_text(short.numpy()), expected_text[:2], atol=1e-4)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_parity_check_fails_on_a_perturbed_session_and_leaves_nothing(tmp_path, tokenizer_file, monkeypatch):
    real = export_onnx.run_session
    monkeypatch.setattr(export_onnx, "run_session", lambda s, x: real(s, x) + np.float32(1e-3))
    config = tiny_config("resnet18")
    with pytest.raises(ExportError, match=r"image_encoder.onnx: onnxruntime differs from PyTorch by 0.001"):
        export_model(CLIP(config), config, tokenizer_file, tmp_path / "out", FAST)
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path) == []


def test_parity_tolerance_is_applied(tmp_path, tokenizer_file):
    config = tiny_config("resnet18")
    strict = ExportConfig(exporter="torchscript", tolerance=0.0)
    model = CLIP(config)
    with torch.no_grad():  # outputs identical to the bit are unlikely across two runtimes
        model.image_projection.weight.mul_(1000.0)
    try:
        export_model(model, config, tokenizer_file, tmp_path / "out", strict)
    except ExportError as err:
        assert "tolerance 0" in str(err)
        assert not (tmp_path / "out").exists()
    else:
        meta = json.loads((tmp_path / "out" / CONFIG_FILE).read_text())
        assert all(t["max_abs_diff"] == 0.0 for t in meta["onnx"]["towers"].values())


def test_existing_directory_needs_overwrite(tmp_path, tokenizer_file):
    config = tiny_config("resnet18")
    no_onnx = ExportConfig(onnx=False)
    out = export_model(CLIP(config), config, tokenizer_file, tmp_path / "out", no_onnx)
    assert not (out / IMAGE_ONNX).exists()
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        export_model(CLIP(config), config, tokenizer_file, out, no_onnx)
    stamp = os.stat(out / WEIGHTS_FILE).st_mtime_ns
    export_model(CLIP(config), config, tokenizer_file, out, ExportConfig(onnx=False, overwrite=True))
    assert os.stat(out / WEIGHTS_FILE).st_mtime_ns != stamp
    assert _leftovers(tmp_path) == []


def test_tokenizer_of_a_larger_vocabulary_is_refused(tmp_path, tokenizer_file):
    config = tiny_config("resnet18")
    config.text.vocab_size = 100
    with pytest.raises(ExportError, match="belongs to another model"):
        export_model(CLIP(config), config, tokenizer_file, tmp_path / "out", FAST)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", sorted(IMAGE_ENCODERS))
def test_dynamo_exporter_passes_parity(tmp_path, tokenizer_file, encoder):
    config = tiny_config(encoder)
    out = export_model(CLIP(config), config, tokenizer_file, tmp_path / "out", ExportConfig(exporter="dynamo"))
    towers = json.loads((out / CONFIG_FILE).read_text())["onnx"]["towers"]
    assert {t["exporter"] for t in towers.values()} == {"dynamo"}
    assert max(t["max_abs_diff"] for t in towers.values()) <= 1e-4
