"""A checkpoint written by an earlier version (``tests/fixtures/checkpoint_v1``) still loads, gives
the same embeddings and loss terms, and resumes to the same logged steps."""

from __future__ import annotations

import json
import lzma
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import tiny_config
from synthetic import write_shards

from lightclip.checkpoint import load_checkpoint, load_inference_model, load_weights, model_config_of, run_metrics
from lightclip.inference import load
from lightclip.task import LightCLIP, LightCLIPObjective
from lightclip.trainconfig import TrainConfig
from lightclip.training import train

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_v1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
CHECKPOINT = "step_00000002.pt"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The fixture as a run directory: unpacked checkpoint and the run's tokenizer."""
    folder = tmp_path_factory.mktemp("v1")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / CHECKPOINT).write_bytes(lzma.decompress((FIXTURE / f"{CHECKPOINT}.xz").read_bytes()))
    shutil.copyfile(FIXTURE / "tokenizer.json", folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURE / "expected.pt", weights_only=True)


def test_inference_embeddings_are_unchanged(run_dir, expected):
    model, _ = load_inference_model(run_dir / "checkpoints" / CHECKPOINT)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(expected["images"]), expected["image_embeds"])
        torch.testing.assert_close(model.encode_text(expected["tokens"]), expected["text_embeds"])
    loaded = load(run_dir)
    assert torch.equal(loaded.tokenize(EXPECTED["captions"]), expected["tokens"])
    torch.testing.assert_close(loaded.encode_text(EXPECTED["captions"]), expected["text_embeds"])


def variant_config(state: dict, overrides: list[str]) -> TrainConfig:
    """The fixture run's recipe with a loss variant's overrides, on the checkpoint's model."""
    config = tiny_config(Path("unused"), Path("unused"), *EXPECTED["overrides"], *overrides)
    return replace(config, model=model_config_of(state))


@pytest.mark.parametrize("name", sorted(EXPECTED["loss_variants"]))
def test_loss_terms_and_frozen_parameters_are_unchanged(name, run_dir, expected):
    state = load_checkpoint(run_dir / "checkpoints" / CHECKPOINT)
    config = variant_config(state, EXPECTED["loss_variants"][name])
    want = EXPECTED["variants"][name]
    torch.manual_seed(0)
    model = LightCLIP(config.model)
    load_weights(model, state["model"], "fixture")
    objective = LightCLIPObjective(config.loss)
    objective.prepare_model(model)
    model.train()
    for progress, terms in want["terms"].items():
        inputs = objective.forward_inputs(model, expected["tokens"], EXPECTED["seed"])
        outputs = model(expected["images"], inputs.tokens, **inputs.extra)
        got = {k: float(v.detach()) for k, v in objective(outputs, float(progress)).items()}
        assert got == pytest.approx(terms, rel=1e-5, abs=1e-6), (name, progress)
    assert sorted(n for n, p in model.named_parameters() if not p.requires_grad) == want["frozen"]
    assert float(model.token_logit_scale.detach()) == pytest.approx(want["token_logit_scale"])


def test_resumed_steps_log_the_same_terms(run_dir, tmp_path):
    shards = tmp_path / "shards"
    write_shards(shards, [10, 10, 10, 10])
    resumed = tmp_path / "resumed"
    checkpoint = run_dir / "checkpoints" / CHECKPOINT
    train(tiny_config(shards, resumed, *EXPECTED["overrides"], "optim.max_steps=4", f"run.resume={checkpoint}"))
    rows = {row["step"]: row for row in map(json.loads, run_metrics(resumed).read_text().splitlines())}
    assert sorted(rows) == [3, 4]
    for step, want in EXPECTED["resumed"].items():
        got = {k: rows[int(step)][k] for k in want}
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), step
