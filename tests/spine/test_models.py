"""Model contracts over every registered encoder; the inference model; the text tower."""

import math

import pytest
import torch
from spine_fixtures import captions, tiny_config

from lightclip import modelconfig
from lightclip.losses import mask_tokens
from lightclip.models import (
    CLIP,
    IMAGE_ENCODERS,
    STAGE_STRIDES,
    TextEncoder,
    build_image_encoder,
)
from lightclip.models.image import timm_network
from lightclip.task import LightCLIP
from pipeline.base.tokenizer import SPECIAL_IDS


@pytest.mark.parametrize("name", sorted(IMAGE_ENCODERS))
def test_encoder_has_four_stages_with_strides_4_to_32(name):
    encoder = build_image_encoder(name, 224).eval()
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 224, 224))
    assert len(features) == 4 and encoder.strides == list(STAGE_STRIDES)
    for feature, stride, width in zip(features, encoder.strides, encoder.widths):
        assert feature.shape == (1, width, 224 // stride, 224 // stride)
    assert features[-1].shape[2] * features[-1].shape[3] == 49


@pytest.mark.parametrize("name", sorted(IMAGE_ENCODERS))
def test_the_torch_free_strides_are_timm_feature_info(name):
    """The start-up checks read ``modelconfig.STAGE_STRIDES``; timm says the same for every encoder."""
    info = timm_network(name, 64).feature_info
    last_of_each = {entry["reduction"]: entry["num_chs"] for entry in info}  # the stage's last module
    assert all(stride in last_of_each for stride in modelconfig.STAGE_STRIDES)
    encoder = build_image_encoder(name, 64)
    assert encoder.widths[:3] == [last_of_each[stride] for stride in modelconfig.STAGE_STRIDES[:3]]


@pytest.mark.parametrize("name", sorted(IMAGE_ENCODERS))
def test_image_tokens_at_224px(name):
    model = LightCLIP(tiny_config(name, image_size=224)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224), captions(1), token_features=True)
    assert out["image_tokens"].shape == (1, 49, 64)


def test_unknown_encoder_lists_valid_names():
    with pytest.raises(KeyError, match="mobilenet_v2.*resnet18.*swin_nano"):
        build_image_encoder("vit_huge")


@pytest.mark.parametrize("projection", ["shared", "separate"])
@pytest.mark.parametrize("name", sorted(IMAGE_ENCODERS))
def test_inference_model_is_a_plain_clip(name, projection):
    config = tiny_config(name, token_projection=projection)
    model = LightCLIP(config).eval()
    inference = model.inference()
    names = [n for n, _ in inference.named_parameters()]
    assert not [n for n in names if "fusion" in n or "mlm" in n or "token_projection" in n]
    assert sum(p.numel() for p in inference.parameters()) == sum(p.numel() for p in CLIP(config).parameters())
    train_only = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in inference.parameters())
    assert train_only > 0
    images, tokens = torch.randn(2, 3, 64, 64), captions(2)
    with torch.no_grad():
        out = model(images, tokens)
        assert torch.equal(inference.encode_image(images), out["image_embeds"])
        assert torch.equal(inference.encode_text(tokens), out["text_embeds"])


def test_logit_scale_initialised_and_capped():
    model = CLIP(tiny_config())
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))


def test_padding_is_masked_out():
    encoder = TextEncoder(tiny_config().text).eval()
    tokens = captions(4)
    tokens[:, 10:] = 0
    tokens[:, 9] = 3  # every caption ends by position 9
    with torch.no_grad():
        long, short = encoder(tokens)[-1], encoder(tokens[:, :10])[-1]
    assert torch.allclose(long[:, :10], short, atol=1e-5)


def test_causal_option_blocks_future_tokens():
    config = tiny_config().text
    config.causal = True
    encoder = TextEncoder(config).eval()
    tokens = captions(2)
    changed = tokens.clone()
    changed[:, 3] = 7
    with torch.no_grad():
        a, b = encoder(tokens)[-1], encoder(changed)[-1]
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_end_token_pooling():
    encoder = TextEncoder(tiny_config().text)
    tokens = captions(3)
    assert torch.equal(encoder.end_positions(tokens), (tokens == 3).int().argmax(dim=1))


@pytest.mark.parametrize("std", [0.02, 1.0])
def test_token_embedding_starts_at_the_configured_std(std):
    config = tiny_config().text
    config.vocab_size, config.embedding_init_std = 4000, std
    torch.manual_seed(0)
    weight = TextEncoder(config).token_embedding.weight.detach()
    assert abs(float(weight.std()) - std) < 0.03 * std
    assert abs(float(weight.mean())) < 0.03 * std


def test_fused_logits_follow_the_image_text_only_logits_do_not():
    model = LightCLIP(tiny_config()).eval()
    tokens = captions(4)
    masked, labels = mask_tokens(tokens, SPECIAL_IDS.all, 1, 300, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model(torch.randn(4, 3, 64, 64), tokens, masked, labels)
        b = model(torch.randn(4, 3, 64, 64), tokens, masked, labels)
    assert a["mlm_targets"].numel() > 0
    assert torch.equal(a["mlm_logits_text"], b["mlm_logits_text"])
    assert not torch.allclose(a["mlm_logits_fused"], b["mlm_logits_fused"])


@pytest.mark.parametrize("mode", ["pool", "cross_attention"])
def test_fusion_modes_and_stage_choices(mode):
    config = tiny_config()
    config.fusion.mode = mode
    config.fusion.stages = (3,)
    model = LightCLIP(config)
    tokens = captions(2)
    masked, labels = mask_tokens(tokens, SPECIAL_IDS.all, 1, 300)
    out = model(torch.randn(2, 3, 64, 64), tokens, masked, labels)
    assert out["mlm_logits_fused"].shape == (int((labels != -100).sum()), 300)
    assert set(model.fusion.proj) == {"3"}


def test_token_mask_excludes_padding_and_special_tokens():
    model = LightCLIP(tiny_config())
    tokens = captions(3)
    mask = model.word_mask(tokens)
    assert torch.equal(mask, tokens >= 4)
