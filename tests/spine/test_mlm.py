"""BERT masking statistics and the text-only / fused MLM passes."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from spine_fixtures import captions, tiny_config

from lightclip.losses import (
    IGNORE_INDEX,
    LossConfig,
    MaskingConfig,
    mask_tokens,
)
from lightclip.losses.mlm import masked_rows
from lightclip.task import LightCLIP, LightCLIPObjective, MLMTerm
from lightclip.task.mlm import MLM_ROW_BUCKETS, mlm_rows
from lightclip.training import DistInfo
from pipeline.base.configs import from_dict
from pipeline.base.tokenizer import SPECIAL_IDS

ROOT = Path(__file__).resolve().parents[2]

SPECIAL = (0, 1, 2, 3)


def mask_batch(tokens, model, loss, seed, info):
    return MLMTerm(loss, info.rank, info.world_size).mask(model, tokens, seed)


def _captions(n: int, length: int = 20, vocab: int = 500, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, vocab, (n, length), generator=g)
    lengths = torch.randint(3, length - 1, (n,), generator=g)
    for row, size in enumerate(lengths.tolist()):
        tokens[row, 0] = 2
        tokens[row, size] = 3
        tokens[row, size + 1 :] = 0
    return tokens


def test_selection_share_and_80_10_10_split():
    tokens = _captions(12_000)
    words = ~torch.isin(tokens, torch.tensor(SPECIAL))
    g = torch.Generator().manual_seed(1)
    masked, labels = mask_tokens(tokens, SPECIAL, mask_id=1, vocab_size=500, generator=g)
    selected = labels != IGNORE_INDEX
    assert words.sum() > 100_000
    assert not (selected & ~words).any(), "special or padding token selected"
    assert selected.sum() / words.sum() == pytest.approx(0.15, abs=0.005)
    n = selected.sum().item()
    became_mask = (masked == 1) & selected
    unchanged = (masked == tokens) & selected
    random = selected & ~became_mask & ~unchanged
    # a random draw may hit the original id (1/496): count those with "unchanged"
    assert became_mask.sum().item() / n == pytest.approx(0.8, abs=0.01)
    assert random.sum().item() / n == pytest.approx(0.1 * 495 / 496, abs=0.01)
    assert unchanged.sum().item() / n == pytest.approx(0.1 + 0.1 / 496, abs=0.01)
    assert (masked[random] >= 4).all() and (masked[random] < 500).all()


def test_labels_hold_originals_at_selected_positions_only():
    tokens = _captions(200)
    masked, labels = mask_tokens(tokens, SPECIAL, 1, 500, MaskingConfig(select_prob=0.5))
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], tokens[selected])
    assert torch.equal(masked[~selected], tokens[~selected])
    assert (labels[~selected] == IGNORE_INDEX).all()


# --- batch_fraction: MLM on a seeded share of the rows ----------------------------------------


def test_batch_fraction_keeps_the_same_draws_on_a_share_of_the_rows():
    tokens = _captions(200)
    full_masked, full_labels = mask_tokens(tokens, SPECIAL, 1, 500, generator=torch.Generator().manual_seed(5))
    config = MaskingConfig(batch_fraction=0.25)
    masked, labels = mask_tokens(tokens, SPECIAL, 1, 500, config, torch.Generator().manual_seed(5))
    rows = (masked != tokens).any(dim=1) | (labels != IGNORE_INDEX).any(dim=1)
    kept = masked_rows(200, 0.25, _generator_after_token_draws(tokens, 5))
    assert kept.sum() == 50 and not (rows & ~kept).any()
    assert torch.equal(labels[kept], full_labels[kept]) and torch.equal(masked[kept], full_masked[kept])
    assert (labels[~kept] == IGNORE_INDEX).all() and torch.equal(masked[~kept], tokens[~kept])


def _generator_after_token_draws(tokens: torch.Tensor, seed: int) -> torch.Generator:
    """The generator state mask_tokens reaches after its per-token draws (three of them)."""
    g = torch.Generator().manual_seed(seed)
    torch.rand(tokens.shape, generator=g)
    torch.rand(tokens.shape, generator=g)
    torch.randint(4, 500, tokens.shape, generator=g)
    return g


def test_masked_rows_are_seeded_and_never_empty():
    a = masked_rows(64, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, masked_rows(64, 0.5, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, masked_rows(64, 0.5, torch.Generator().manual_seed(2)))
    assert a.sum() == 32 and masked_rows(3, 0.01).sum() == 1 and masked_rows(5, 1.0).all()


@pytest.mark.parametrize("world_size", [2, 4])
def test_batch_fraction_selects_the_same_global_rows_on_any_number_of_ranks(world_size):
    model = LightCLIP(tiny_config())
    loss = LossConfig(masking=MaskingConfig(batch_fraction=0.5))
    tokens = captions(16)
    one_masked, one_labels = mask_batch(tokens, model, loss, 99, DistInfo())
    rows = 16 // world_size
    parts = [
        mask_batch(tokens[r * rows : (r + 1) * rows], model, loss, 99, DistInfo(rank=r, world_size=world_size))
        for r in range(world_size)
    ]
    assert torch.equal(torch.cat([m for m, _ in parts]), one_masked)
    assert torch.equal(torch.cat([lab for _, lab in parts]), one_labels)
    assert (one_labels != IGNORE_INDEX).any(dim=1).sum() <= 8


@pytest.mark.parametrize("value", [0.0, -0.5, 1.5])
def test_batch_fraction_out_of_range_names_the_key(value):
    with pytest.raises(ValueError, match=r"loss\.masking\.batch_fraction must be in \(0, 1\]"):
        from_dict(LossConfig, {"masking": {"batch_fraction": value}})


def test_recipe_value_out_of_range_is_a_one_line_cli_error(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightclip",
            "train",
            "--recipe",
            str(ROOT / "recipes/train/tiny.yaml"),
            f"data.shards={tmp_path}",
            f"run.out_dir={tmp_path / 'run'}",
            "loss.masking.batch_fraction=2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lightclip train: loss.masking.batch_fraction must be in (0, 1], got 2.0"
    ]
    assert not (tmp_path / "run").exists()


# --- the MLM passes: batched text-only + fused forward -----------------------------------------


def sequential_mlm_logits(model: LightCLIP, stages, tokens, labels) -> dict[str, torch.Tensor]:
    """The two passes one after the other over the whole batch (the reference)."""
    text = model.clip.text
    selected = labels != IGNORE_INDEX
    mask = text.attention_mask(tokens)
    fuse_at = model.fusion.stages
    shared = text.run_stages(text.embed(tokens), mask, 0, fuse_at[0])[-1]
    text_only = text.run_stages(shared, mask, fuse_at[0], len(text.stages))[-1]
    fused = shared
    for stage in range(fuse_at[0], len(text.stages) + 1):
        if stage in fuse_at:
            fused = model.fusion(stage, fused, stages[stage - 1])
        if stage < len(text.stages):
            fused = text.run_stages(fused, mask, stage, stage + 1)[-1]
    return {
        "mlm_logits_text": model.mlm_head(text.ln_final(text_only)[selected]),
        "mlm_logits_fused": model.mlm_head(text.ln_final(fused)[selected]),
        "mlm_targets": labels[selected],
    }


def _mlm_inputs(fraction: float, fusion_stages=(2, 3), mode="pool"):
    config = tiny_config()
    config.fusion.stages, config.fusion.mode = fusion_stages, mode
    model = LightCLIP(config).train()
    tokens = captions(12)
    masked, labels = mask_tokens(
        tokens,
        SPECIAL_IDS.all,
        1,
        300,
        MaskingConfig(select_prob=0.5, batch_fraction=fraction),
        torch.Generator().manual_seed(3),
    )
    stages = model.clip.image_stages(torch.randn(12, 3, 64, 64))
    return model, stages, masked, labels


@pytest.mark.parametrize(("fusion_stages", "mode"), [((2, 3), "pool"), ((1, 4), "cross_attention"), ((3,), "pool")])
def test_batched_passes_are_bit_identical_to_sequential_passes(fusion_stages, mode):
    model, stages, masked, labels = _mlm_inputs(1.0, fusion_stages, mode)
    assert (labels != IGNORE_INDEX).any(dim=1).all()
    got = model._mlm_logits(stages, masked, labels)
    expected = sequential_mlm_logits(model, stages, masked, labels)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    params = [model.mlm_head.decoder.weight, model.clip.text.token_embedding.weight]
    grads = [
        torch.autograd.grad(out["mlm_logits_fused"].square().sum() + out["mlm_logits_text"].sum(), params)
        for out in (got, expected)
    ]
    for a, b in zip(*grads):  # the same sums, in another order
        assert (a - b).norm() <= 1e-6 * b.norm()


def test_rows_without_masked_words_are_skipped_with_the_same_logits():
    model, stages, masked, labels = _mlm_inputs(0.5)
    assert (labels != IGNORE_INDEX).any(dim=1).sum() == 6
    got = model._mlm_logits(stages, masked, labels, mlm_rows((labels != IGNORE_INDEX).any(dim=1)))
    expected = sequential_mlm_logits(model, stages, masked, labels)
    for name in expected:
        assert got[name].shape == expected[name].shape
        assert torch.allclose(got[name], expected[name], rtol=0, atol=1e-5), name


@pytest.mark.parametrize("rows", [1, 7, 64, 100])
def test_mlm_rows_keep_every_masked_row_in_at_most_8_batch_sizes(rows):
    g = torch.Generator().manual_seed(rows)
    sizes = set()
    for count in range(rows + 1):
        has = torch.zeros(rows, dtype=torch.bool)
        has[torch.randperm(rows, generator=g)[:count]] = True
        keep = mlm_rows(has)
        if keep is None:  # all rows
            assert count == 0 or count > rows - -(-rows // MLM_ROW_BUCKETS)
            sizes.add(rows)
            continue
        assert keep.tolist() == sorted(set(keep.tolist()))
        assert set(has.nonzero().squeeze(1).tolist()) <= set(keep.tolist())
        assert len(keep) - count < -(-rows // MLM_ROW_BUCKETS)  # tops up by less than one step
        sizes.add(len(keep))
    assert len(sizes) <= MLM_ROW_BUCKETS


def test_rows_topped_up_for_a_steady_batch_size_give_the_same_logits():
    model, stages, masked, labels = _mlm_inputs(0.25)
    has = (labels != IGNORE_INDEX).any(dim=1)
    assert has.sum() == 3 and len(mlm_rows(has)) == 4  # 3 of 12 rows, topped up to 4
    got = model._mlm_logits(stages, masked, labels, mlm_rows(has))
    expected = sequential_mlm_logits(model, stages, masked, labels)
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=0, atol=1e-5), name


def test_the_mlm_term_picks_its_rows_on_the_cpu_and_they_reach_the_forward():
    """forward_inputs carries the MLM rows (computed from the CPU labels, untrimmed); the
    forward on them gives the logits of the forward over every row."""
    model, _, _, _ = _mlm_inputs(0.25)
    masking = MaskingConfig(select_prob=0.5, batch_fraction=0.25)
    objective = LightCLIPObjective(LossConfig(instance_weight=1.0, token_weight=0.0, mlm_weight=1.0, masking=masking))
    tokens = captions(12)
    inputs = objective.forward_inputs(model, tokens, seed=3)
    labels = inputs.extra["mlm_labels"]
    rows = inputs.extra.get("mlm_rows")
    assert rows is not None and rows.device.type == "cpu"
    assert torch.equal(rows, mlm_rows((labels != IGNORE_INDEX).any(dim=1)))
    images = torch.randn(12, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        got = model(images, inputs.tokens, **inputs.extra)
        every = model(images, inputs.tokens, **{k: v for k, v in inputs.extra.items() if k != "mlm_rows"})
    for name in ("mlm_logits_text", "mlm_logits_fused", "mlm_targets"):
        assert torch.allclose(got[name].float(), every[name].float(), rtol=0, atol=1e-5), name
