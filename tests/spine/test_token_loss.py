"""Token InfoNCE against a literal-loop reference; collapse; token-stage checks; fp32 losses."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from lightclip.losses import LossConfig, TokenLossConfig, token_loss
from lightclip.modelconfig import ModelConfig, check_token_stage, stage_positions
from lightclip.task import LightCLIPObjective
from pipeline.base.configs import ConfigError


def _tokens(b: int, p: int, q: int, d: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(b, p, d, generator=g, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(b, q, d, generator=g, dtype=torch.float64), dim=-1)
    mask = torch.rand(b, q, generator=g) > 0.3
    mask[0] = True
    return image, text, mask


def _reference(image, text, mask, tau: float, symmetric: bool, batch: bool = False) -> float:
    """Literal loops: scipy matching per pair, then -log softmax per matched word / patch over
    the pair's own patches / words, or (``batch``) over those of every image / text."""
    per_pair = []
    others = range(image.shape[0]) if batch else None
    for i in range(image.shape[0]):
        words = [q for q in range(text.shape[1]) if mask[i, q]]
        if not words:
            continue
        s = (image[i] @ text[i].T).numpy()  # (P, Q)
        rows, cols = linear_sum_assignment(1 - s[:, words])
        word_terms, patch_terms = [], []
        for p, k in zip(rows, cols):
            q = words[k]
            images = others or [i]
            column = [math.exp(float(image[j, pp] @ text[i, q]) / tau) for j in images for pp in range(s.shape[0])]
            word_terms.append(-math.log(math.exp(s[p, q] / tau) / sum(column)))
            texts = others or [i]
            row = [
                math.exp(float(image[i, p] @ text[j, qq]) / tau)
                for j in texts
                for qq in range(text.shape[1])
                if mask[j, qq]
            ]
            patch_terms.append(-math.log(math.exp(s[p, q] / tau) / sum(row)))
        word = sum(word_terms) / len(word_terms)
        per_pair.append((word + sum(patch_terms) / len(patch_terms)) / 2 if symmetric else word)
    return sum(per_pair) / len(per_pair)


@pytest.mark.parametrize("p,q", [(9, 5), (4, 7), (6, 6)])
@pytest.mark.parametrize("symmetric", [False, True])
def test_token_infonce_matches_literal_loops(p, q, symmetric):
    image, text, mask = _tokens(5, p, q, seed=p * 10 + q)
    config = TokenLossConfig(form="infonce", temperature=0.2, symmetric=symmetric)
    got = token_loss(image, text, mask, config)
    assert got.item() == pytest.approx(_reference(image, text, mask, 0.2, symmetric), rel=1e-9)


@pytest.mark.parametrize("p,q", [(9, 5), (4, 7)])
@pytest.mark.parametrize("symmetric", [False, True])
def test_token_infonce_with_batch_negatives_matches_literal_loops(p, q, symmetric):
    image, text, mask = _tokens(4, p, q, seed=p * 10 + q + 1)
    config = TokenLossConfig(form="infonce", temperature=0.2, symmetric=symmetric, negatives="batch")
    got = token_loss(image, text, mask, config)
    assert got.item() == pytest.approx(_reference(image, text, mask, 0.2, symmetric, batch=True), rel=1e-9)


def test_batch_negatives_separate_what_pair_negatives_cannot():
    """Every image holds the same patches: inside a pair any word finds a distinct patch (loss
    near 0 at a low temperature), across the batch the other images' copies compete (log B)."""
    b, p, d = 4, 3, 6
    patches = torch.eye(d, dtype=torch.float64)[:p]
    image = patches.expand(b, p, d).clone()
    text = patches.expand(b, p, d).clone()
    mask = torch.ones(b, p, dtype=torch.bool)
    pair = token_loss(image, text, mask, TokenLossConfig(temperature=0.01)).item()
    batch = token_loss(image, text, mask, TokenLossConfig(temperature=0.01, negatives="batch")).item()
    assert pair == pytest.approx(0.0, abs=1e-6)
    assert batch == pytest.approx(math.log(b), rel=1e-6)


def test_collapsed_tokens_are_the_top_not_the_bottom_of_the_infonce_loss():
    b, p, q, d = 4, 9, 5, 6
    image, text, mask = _tokens(b, p, q, d)
    mask[:] = True
    same = F.normalize(torch.ones(d, dtype=torch.float64), dim=0)
    collapsed_image, collapsed_text = same.expand(b, p, d), same.expand(b, q, d)
    config = TokenLossConfig(form="infonce", temperature=0.1)
    collapsed = token_loss(collapsed_image, collapsed_text, mask, config).item()
    assert collapsed == pytest.approx(math.log(p), rel=1e-12)  # chance level
    random_losses = [token_loss(*_tokens(b, p, q, d, seed=s)[:2], mask, config).item() for s in range(20)]
    assert max(random_losses) < collapsed  # the matching makes any spread-out state better
    aligned_image = image.clone()
    aligned_image[:, :q] = text  # every word has its own patch
    assert token_loss(aligned_image, text, mask, config).item() < 0.5 * collapsed
    # The cost form is minimised by collapse (why it is not the default).
    cost = TokenLossConfig(form="cost")
    assert token_loss(collapsed_image, collapsed_text, mask, cost).item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_flows_through_similarities_and_pushes_collapse_apart():
    image, text, mask = _tokens(3, 6, 4)
    image.requires_grad_(True)
    token_loss(image, text, mask, TokenLossConfig(temperature=0.1)).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_start_up_error_for_a_stage_with_too_few_positions():
    assert stage_positions(32, 4) == 1 and stage_positions(32, 3) == 4 and stage_positions(224, 4) == 49
    with pytest.raises(ConfigError, match=r"token_stage=4 has 1 position.*token_stage=3.*image_size >= 64"):
        check_token_stage(ModelConfig(image_encoder="resnet18", image_size=32, token_stage=4))
    with pytest.raises(ConfigError, match="token_projection=separate"):
        check_token_stage(ModelConfig(image_size=224, token_stage=3, token_projection="shared"))
    check_token_stage(ModelConfig(image_size=32, token_stage=3, token_projection="separate"))
    check_token_stage(ModelConfig(image_size=64, token_stage=4))


def _outputs(dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b, p, q, d, m, v = 6, 9, 5, 16, 7, 30
    out = {
        "image_embeds": F.normalize(torch.randn(b, d, generator=g), dim=-1),
        "text_embeds": F.normalize(torch.randn(b, d, generator=g), dim=-1),
        "logit_scale": torch.tensor(100.0),
        "image_tokens": F.normalize(torch.randn(b, p, d, generator=g), dim=-1),
        "text_tokens": F.normalize(torch.randn(b, q, d, generator=g), dim=-1),
        "text_token_mask": torch.ones(b, q, dtype=torch.bool),
        "mlm_logits_text": torch.randn(m, v, generator=g) * 5,
        "mlm_logits_fused": torch.randn(m, v, generator=g) * 5,
        "mlm_targets": torch.randint(0, v, (m,), generator=g),
    }
    return {k: t.to(dtype) if t.is_floating_point() else t for k, t in out.items()}


@pytest.mark.parametrize("mode", ["one_hot", "smooth", "importance"])
def test_losses_run_in_fp32_under_bf16_autocast(mode):
    """bf16 inputs inside a CPU bf16 autocast region give the fp32 result of the same values."""
    objective = LightCLIPObjective(LossConfig(label_mode=mode))
    bf16 = _outputs(torch.bfloat16)
    reference = objective({k: v.float() if v.is_floating_point() else v for k, v in bf16.items()}, 0.9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = objective(bf16, 0.9)
    for name in ("instance", "instance_onehot", "token", "mlm", "loss"):
        assert got[name].dtype == torch.float32, name
        assert got[name].item() == pytest.approx(reference[name].item(), rel=1e-6), name


def test_importance_temperature_spreads_alpha_over_more_negatives():
    from lightclip.losses import soft_targets

    logits = torch.tensor([[50.0, 40.0, 30.0, 20.0]])
    sharp = soft_targets(logits, torch.tensor([0]), "importance", 0.2)
    soft = soft_targets(logits, torch.tensor([0]), "importance", 0.2, importance_temperature=10.0)
    expected = 0.2 * np.exp(np.array([4.0, 3.0, 2.0]) - 4) / np.exp(np.array([4.0, 3.0, 2.0]) - 4).sum()
    assert np.allclose(soft[0, 1:].numpy(), expected, atol=1e-6)
    assert sharp[0, 1] > soft[0, 1] and torch.allclose(soft.sum(), torch.tensor(1.0))
