"""Trainer pieces: optimizer groups, schedule, masking, non-finite handling, checkpoints, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import ROOT, tiny_config
from synthetic import write_shards

from lightclip import checkpoint as ckpt
from lightclip.cli import main as cli_main
from lightclip.losses import LossConfig, mask_tokens
from lightclip.task import LightCLIP, LightCLIPObjective, MLMTerm, trim_padding
from lightclip.trainconfig import OptimConfig, RunConfig, TrainConfig, check_train_config
from lightclip.training import DistInfo, NonFiniteLossError, build_parts, param_groups, resolve_config, train_step
from lightclip.training.optim import lr_at
from lightclip.training.state import resume_path
from lightclip.training.step import NonFiniteGuard
from pipeline.base.configs import ConfigError, from_dict, load_recipe, to_dict
from pipeline.base.tokenizer import SPECIAL_IDS, CaptionTokenizer


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, [16, 16])
    return folder


@pytest.fixture(scope="module")
def cfg(shards, tmp_path_factory) -> TrainConfig:
    config = tiny_config(shards, tmp_path_factory.mktemp("run"), "model.image_encoder=mobilenet_v2")
    return resolve_config(config, CaptionTokenizer.from_file(shards, 16))


def test_no_weight_decay_on_norms_biases_positions_and_logit_scale(cfg):
    model = LightCLIP(cfg.model)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    skipped = {names[id(p)] for p in no_decay["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert {"clip.logit_scale", "clip.text.positional_embedding", "clip.text.ln_final.weight"} <= skipped
    assert all(n in skipped for n in names.values() if n.endswith(".bias"))
    assert {"clip.text.token_embedding.weight", "clip.text_projection.weight"} <= decayed
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(skipped) + len(decayed) == len(names)


def test_lr_schedule_warmup_and_cosine():
    opt = OptimConfig(lr=5e-4, warmup=0.05)
    total = 200  # warmup 10 steps, cosine over the remaining 190
    assert lr_at(0, total, opt) == 0.0
    assert lr_at(5, total, opt) == pytest.approx(2.5e-4)
    assert lr_at(10, total, opt) == pytest.approx(5e-4)
    assert lr_at(105, total, opt) == pytest.approx(2.5e-4)
    assert lr_at(200, total, opt) == pytest.approx(0.0, abs=1e-12)
    assert all(lr_at(s + 1, total, opt) <= lr_at(s, total, opt) for s in range(10, 200))


def mask_batch(tokens, model, loss, seed, info):
    return MLMTerm(loss, info.rank, info.world_size).mask(model, tokens, seed)


def test_masking_is_the_same_for_any_number_of_ranks(cfg):
    model = LightCLIP(cfg.model)
    tokens = torch.randint(4, cfg.model.text.vocab_size, (8, 16))
    whole, whole_labels = mask_batch(tokens, model, cfg.loss, 7, DistInfo(0, 1))
    for rank in range(2):
        part, labels = mask_batch(tokens[rank * 4 : rank * 4 + 4], model, cfg.loss, 7, DistInfo(rank, 2))
        assert torch.equal(part, whole[rank * 4 : rank * 4 + 4])
        assert torch.equal(labels, whole_labels[rank * 4 : rank * 4 + 4])
    assert (whole_labels != -100).any()
    expected, _ = mask_tokens(
        tokens, SPECIAL_IDS.all, 1, cfg.model.text.vocab_size, cfg.loss.masking, torch.Generator().manual_seed(7)
    )
    assert torch.equal(whole, expected)


def test_nonfinite_loss_skips_the_step(cfg):
    parts = build_parts(cfg, DistInfo())
    before = {n: p.detach().clone() for n, p in parts.model.named_parameters()}
    images = torch.full((4, 3, 32, 32), float("nan"))
    tokens = torch.randint(4, cfg.model.text.vocab_size, (4, 16))
    result = train_step(parts, cfg, DistInfo(), [(images, tokens)], step=3, total=10)
    terms, bad = result.terms, result.nonfinite
    assert result.skipped and not terms and "output:image_embeds" in bad and "loss" in bad
    assert all(torch.equal(p, before[n]) for n, p in parts.model.named_parameters())
    result = train_step(parts, cfg, DistInfo(), [(torch.randn(4, 3, 32, 32), tokens)], 3, 10)
    terms, bad = result.terms, result.nonfinite
    assert (
        bad == [] and not result.skipped and math.isfinite(terms["loss"]) and {"instance", "token", "mlm"} <= set(terms)
    )
    assert any(not torch.equal(p, before[n]) for n, p in parts.model.named_parameters())


def test_clip_baseline_trains_only_the_inference_model(cfg):
    base = from_dict(
        TrainConfig, {**to_dict(cfg), "loss": {"token_weight": 0, "mlm_weight": 0, "label_mode": "one_hot"}}
    )
    parts = build_parts(base, DistInfo())
    tokens = torch.randint(4, cfg.model.text.vocab_size, (4, 16))
    terms = train_step(parts, base, DistInfo(), [(torch.randn(4, 3, 32, 32), tokens)], 0, 10).terms
    assert set(terms) == {"instance", "instance_onehot", "loss"}
    trainable = {n for n, p in parts.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("clip.") for n in trainable)


def test_guard_stops_after_consecutive_nonfinite_steps():
    guard = NonFiniteGuard(limit=3)
    guard.update(1, ["mlm"])
    guard.update(2, [])
    guard.update(3, ["mlm"])
    guard.update(4, ["loss"])
    with pytest.raises(NonFiniteLossError, match=r"3 steps in a row.*step 5.*'token'"):
        guard.update(5, ["token", "loss"])
    assert guard.total == 4


def test_atomic_checkpoint_leaves_no_partial_file(tmp_path, monkeypatch):
    path = ckpt.checkpoint_path(tmp_path, 1)
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    original = path.read_bytes()

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint({"step": 1, "w": torch.zeros(3)}, path)
    with pytest.raises(OSError):
        ckpt.save_checkpoint({"step": 2}, ckpt.checkpoint_path(tmp_path, 2))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert path.read_bytes() == original


def test_checkpoint_round_trip_and_clear_errors(cfg, tmp_path):
    model = LightCLIP(cfg.model)
    state = {"step": 5, "config": to_dict(cfg), "model": model.state_dict()}
    path = ckpt.save_checkpoint(state, ckpt.checkpoint_dir(tmp_path) / ckpt.checkpoint_name(5))
    assert torch.load(path, weights_only=True)["step"] == 5
    assert ckpt.latest_checkpoint(tmp_path) == path
    clip, model_cfg = ckpt.load_inference_model(path)
    assert model_cfg == cfg.model and not clip.training
    assert torch.equal(clip.logit_scale, model.clip.logit_scale)
    ckpt.run_tokenizer(tmp_path).write_text("{}")
    assert ckpt.find_tokenizer(path) == ckpt.run_tokenizer(tmp_path)

    other = to_dict(cfg)
    other["model"]["image_encoder"] = "resnet18"
    foreign = ckpt.save_checkpoint({**state, "config": other}, tmp_path / "foreign.pt")
    with pytest.raises(ckpt.CheckpointError, match="another architecture"):
        ckpt.load_inference_model(foreign)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ckpt.CheckpointError, match="damaged"):
        ckpt.load_inference_model(damaged)


def test_a_run_directory_or_a_checkpoint_file_resolves_the_same_way_everywhere(tmp_path):
    for step in (2, 10):
        ckpt.save_checkpoint({"step": step}, ckpt.checkpoint_path(tmp_path / "run", step))
    newest = ckpt.checkpoint_path(tmp_path / "run", 10)
    assert newest == tmp_path / "run" / "checkpoints" / "step_00000010.pt"
    for given in (tmp_path / "run", tmp_path / "run" / "checkpoints", newest):
        assert ckpt.resolve_checkpoint(given) == newest
    older = ckpt.checkpoint_path(tmp_path / "run", 2)
    assert ckpt.resolve_checkpoint(older) == older
    assert resume_path(RunConfig(out_dir=str(tmp_path / "other"), resume=str(tmp_path / "run"))) == newest
    assert resume_path(RunConfig(out_dir=str(tmp_path / "run"))) == newest
    assert resume_path(RunConfig(out_dir=str(tmp_path / "empty"))) is None
    assert (
        ckpt.run_dir_of(newest) == tmp_path / "run"
        and ckpt.eval_dir(older) == tmp_path / "run" / "eval" / "step_00000002"
    )
    for missing in (tmp_path / "empty_run", tmp_path / "nothing.pt"):
        missing.parent.mkdir(exist_ok=True)
        if missing.suffix == "":
            missing.mkdir()
        with pytest.raises(ckpt.CheckpointError, match=rf"{missing}.*step_\*\.pt"):
            ckpt.resolve_checkpoint(missing)


def test_the_objective_asks_only_for_the_inputs_of_its_active_terms(cfg):
    model = LightCLIP(cfg.model)
    tokens = torch.randint(4, cfg.model.text.vocab_size, (4, 16))
    tokens[:, 10:] = SPECIAL_IDS.pad
    full = LightCLIPObjective(cfg.loss).forward_inputs(model, tokens, seed=3)
    assert full.tokens.shape == (4, 10) and full.extra["token_features"] is True
    assert full.extra["mlm_tokens"].shape == full.extra["mlm_labels"].shape == (4, 10)
    clip_only = LossConfig(token_weight=0, mlm_weight=0)
    assert LightCLIPObjective(clip_only).forward_inputs(model, tokens, seed=3).extra == {}
    LightCLIPObjective(clip_only).prepare_model(model)
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert {"fusion", "mlm_head"} <= frozen and "clip" not in frozen


def test_keep_last_k(tmp_path):
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint({"step": step}, ckpt.checkpoint_dir(tmp_path) / ckpt.checkpoint_name(step))
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_00000003.pt", "step_00000004.pt"]


PAPER_RECIPES = [f"{e}{s}" for e in ("resnet18", "mobilenet_v2", "swin_nano") for s in ("", "_clip")]


@pytest.mark.parametrize(
    "recipe", [ROOT / "recipes" / "train" / f"{n}.yaml" for n in [*PAPER_RECIPES, "tiny"]], ids=lambda p: p.stem
)
def test_recipes_load(recipe):
    config = from_dict(TrainConfig, load_recipe(recipe))
    if recipe.stem.endswith("_clip"):
        assert config.loss == LossConfig(instance_weight=1, token_weight=0, mlm_weight=0, label_mode="one_hot")
    if recipe.stem != "tiny":
        assert (config.optim.batch_size, config.optim.epochs, config.model.image_size) == (4096, 32, 224)
        text = config.model.text
        assert (text.width, text.layers, text.heads, text.context_length) == (512, 8, 8, 77)


def test_cli_without_data_says_so(capsys):
    assert cli_main(["train", "--recipe", str(ROOT / "recipes/train/tiny.yaml")]) == 2
    assert "data.shards" in capsys.readouterr().err


def test_trailing_padding_is_trimmed_without_changing_outputs(cfg):
    model = LightCLIP(cfg.model).eval()
    tokens = torch.randint(4, cfg.model.text.vocab_size, (3, 16))
    tokens[:, 0], tokens[:, 7:] = 2, 0
    tokens[0, 6], tokens[1, 4], tokens[1, 5:], tokens[2, 3], tokens[2, 4:] = 3, 3, 0, 3, 0
    assert trim_padding(tokens, pad_id=0)[0].shape == (3, 7)
    with torch.no_grad():
        full, trimmed = model.clip.encode_text(tokens), model.clip.encode_text(tokens[:, :7])
    assert torch.allclose(full, trimmed, atol=1e-6)


def test_trimmed_length_rounds_up_to_the_multiple_and_never_past_the_context(cfg):
    tokens = torch.full((2, 20), 0)
    tokens[:, :5] = 7
    assert [trim_padding(tokens, pad_id=0, multiple=m)[0].shape[1] for m in (1, 4, 8, 16, 32)] == [5, 8, 8, 16, 20]
    tokens[0, :] = 7  # no padding column: nothing to round
    assert trim_padding(tokens, pad_id=0, multiple=8)[0].shape[1] == 20


def test_the_length_multiple_is_exact_by_default_and_16_when_compiling():
    assert [RunConfig(**kw).length_multiple for kw in ({}, {"compile": True}, {"text_length_multiple": 8})] == [
        1,
        16,
        8,
    ]
    with pytest.raises(ConfigError, match="run.text_length_multiple"):
        check_train_config(TrainConfig(run=RunConfig(text_length_multiple=-1)))


def test_bucketed_lengths_give_the_same_loss_and_gradients(cfg):
    """Rounding the trimmed length up (run.text_length_multiple) only adds padding columns,
    which attention masks out and no term reads: same terms, same gradients."""
    model = LightCLIP(cfg.model)
    objective = LightCLIPObjective(cfg.loss)
    images = torch.randn(4, 3, cfg.model.image_size, cfg.model.image_size)
    tokens = torch.randint(4, cfg.model.text.vocab_size, (4, 16))
    tokens[:, 0], tokens[:, 9] = SPECIAL_IDS.sos, SPECIAL_IDS.eos
    tokens[:, 10:] = SPECIAL_IDS.pad
    results = []
    for multiple in (1, 16):
        inputs = objective.forward_inputs(model, tokens, seed=3, length_multiple=multiple)
        assert inputs.tokens.shape[1] == (10 if multiple == 1 else 16)
        model.zero_grad()
        torch.manual_seed(0)
        terms = objective(model(images, inputs.tokens, **inputs.extra), 0.5)
        terms["loss"].backward()
        results.append(
            (
                {k: float(v.detach()) for k, v in terms.items()},
                {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
            )
        )
    (terms_a, grads_a), (terms_b, grads_b) = results
    assert terms_a.keys() == terms_b.keys() and all(abs(terms_a[k] - terms_b[k]) < 1e-4 for k in terms_a)
    assert grads_a.keys() == grads_b.keys()
    # float rounding only (the softmax sums run over more masked columns): compared over the
    # whole gradient, as some batch-norm biases sum to ~0 and keep only rounding
    norm = torch.cat([a.flatten() for a in grads_a.values()]).norm()
    difference = torch.cat([(a - grads_b[n]).flatten() for n, a in grads_a.items()]).norm()
    assert difference <= 1e-5 * norm


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_naming_the_file(tmp_path, caplog):
    from lightclip.training.metrics import trim_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')  # a crash mid-write
    with caplog.at_level("WARNING", logger="lightclip.training"):
        trim_metrics(path, 2)
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n'
    assert str(path) in caplog.text and "1 unreadable line" in caplog.text
    path.write_text('{"step": 1}\n[1, 2]\n"text"\n{"step": "x"}\n{"step": 2}\n')  # not objects with a step
    trim_metrics(path, 5)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_checkpoints_without_optimizer_state_are_a_third_and_still_resume(cfg, tmp_path):
    from dataclasses import replace

    from lightclip.training.state import TrainState, restore, save
    from pipeline.stream import PositionTracker

    sizes = {}
    for keep_optimizer in (True, False):
        run = replace(cfg.run, out_dir=str(tmp_path / str(keep_optimizer)), save_optimizer=keep_optimizer)
        config = replace(cfg, run=run)
        parts = build_parts(config, DistInfo())
        train_step(parts, config, DistInfo(), [(torch.rand(4, 3, 32, 32), torch.randint(4, 50, (4, 16)))], 0, 10)
        path = save(parts, config, DistInfo(), TrainState(step=1), PositionTracker(0, 0, None))
        sizes[keep_optimizer] = path.stat().st_size
        assert restore(path, build_parts(config, DistInfo()), config, DistInfo()).step == 1
    assert sizes[False] < 0.4 * sizes[True]


def test_progress_in_a_log_is_a_line_per_interval_not_carriage_return_frames(monkeypatch):
    import io

    from pipeline.base.progress import progress_bar

    monkeypatch.setenv("PROGRESS_EVERY_S", "3600")
    log = io.StringIO()
    bar = progress_bar(total=10_000, desc="train", file=log)
    for _ in range(10_000):
        bar.update(1)
        bar.set_postfix(loss=1.0)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2  # the start and the final state
    assert lines[-1].startswith("train: 100%") and "10000/10000" in lines[-1]
    monkeypatch.setenv("PROGRESS_EVERY_S", "0")
    log = io.StringIO()
    assert list(progress_bar(range(3), desc="eval", file=log)) == [0, 1, 2]
    assert log.getvalue().count("\n") >= 3 and "\r" not in log.getvalue()
