"""``export --format open_clip``: open_clip loads the export and gives this project's embeddings."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from export_fixtures import CAPTIONS, tiny_config, write_images, write_tokenizer
from PIL import Image

from lightclip.export import ExportConfig, ExportError, export_model
from lightclip.interop.openclip_format import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS
from lightclip.interop.openclip_load import load_open_clip
from lightclip.models import CLIP
from pipeline.base.augment_image import eval_transform
from pipeline.base.tokenizer import CaptionTokenizer

pytestmark = [pytest.mark.slow, pytest.mark.interop]
pytest.importorskip("open_clip", reason="the interop extra: pip install -e '.[interop]'")
TOLERANCE = 1e-4
OPEN_CLIP = ExportConfig(format="open_clip", onnx=False)


def random_model(encoder: str, causal: bool = False, image_size: int = 64) -> CLIP:
    """Random weights, batch-norm statistics included, so that every tensor is exercised."""
    config = tiny_config(encoder, image_size)
    model = CLIP(replace(config, text=replace(config.text, causal=causal))).eval()
    generator = torch.Generator().manual_seed(1)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
        elif name.endswith("running_var"):
            buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    return model


def export(model: CLIP, tmp_path, name: str = "") -> tuple:
    tokenizer_path = write_tokenizer(tmp_path / "tokenizer.json")
    out = export_model(model, model.config, tokenizer_path, tmp_path / "oc", replace(OPEN_CLIP, open_clip_name=name))
    return out, CaptionTokenizer.from_file(tokenizer_path, model.config.text.context_length)


def ours(model: CLIP, tokenizer: CaptionTokenizer, images: list) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.stack([eval_transform(model.config.image_size)(image) for image in images])
    with torch.no_grad():
        return model.encode_image(pixels), model.encode_text(torch.from_numpy(tokenizer.encode(CAPTIONS)))


def theirs(model, preprocess, tokenizer, images: list) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        image = model.encode_image(torch.stack([preprocess(i) for i in images]), normalize=True)
        return image, model.encode_text(tokenizer(CAPTIONS), normalize=True)


def load_images(tmp_path) -> list:
    return [Image.open(path).convert("RGB") for path in write_images(tmp_path / "images")]


@pytest.mark.parametrize("encoder", ["resnet18", "mobilenet_v2", "swin_nano"])
def test_open_clip_export_matches_our_embeddings(encoder, tmp_path):
    model = random_model(encoder)
    out, tokenizer = export(model, tmp_path)
    assert {OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS, "tokenizer.json"} <= {p.name for p in out.iterdir()}
    loaded = load_open_clip(out)
    images = load_images(tmp_path)
    assert torch.equal(loaded.preprocess(images[0]), eval_transform(64)(images[0]))
    assert torch.equal(
        torch.from_numpy(loaded.tokenizer.encode(CAPTIONS)), torch.from_numpy(tokenizer.encode(CAPTIONS))
    )
    (image, text), (image_oc, text_oc) = (
        ours(model, tokenizer, images),
        theirs(loaded.model, loaded.preprocess, loaded.tokenizer.tokenizer, images),
    )
    assert (image - image_oc).abs().max() <= TOLERANCE
    assert (text - text_oc).abs().max() <= TOLERANCE
    assert float(loaded.model.logit_scale.detach()) == pytest.approx(3.0)


def test_plain_open_clip_loads_a_causal_export_by_name(tmp_path):
    """No lightclip code on the loading side: add_model_config + create_model_and_transforms."""
    import open_clip

    model = random_model("resnet18", causal=True)
    out, tokenizer = export(model, tmp_path, name="lightclip-test-causal")
    open_clip.add_model_config(out)
    oc_model, _, preprocess = open_clip.create_model_and_transforms(
        "lightclip-test-causal", pretrained=str(out / OPEN_CLIP_WEIGHTS)
    )
    oc_tokenizer = open_clip.get_tokenizer("lightclip-test-causal")
    images = load_images(tmp_path)
    (image, text), (image_oc, text_oc) = (
        ours(model, tokenizer, images),
        theirs(oc_model.eval(), preprocess, oc_tokenizer, images),
    )
    assert (image - image_oc).abs().max() <= TOLERANCE
    assert (text - text_oc).abs().max() <= TOLERANCE


def test_bidirectional_text_needs_the_padding_mask(tmp_path):
    """What the loader's one setting is for: without it open_clip attends to padding."""
    import open_clip

    model = random_model("resnet18")
    out, tokenizer = export(model, tmp_path)
    settings = json.loads((out / OPEN_CLIP_CONFIG).read_text())["lightclip"]["settings"]
    assert settings["text_padding_mask"] is True and settings["register_trunk"] is False
    plain = open_clip.create_model(f"local-dir:{out}").eval()
    _, text = ours(model, tokenizer, load_images(tmp_path)[:1])
    with torch.no_grad():
        unmasked = plain.encode_text(torch.from_numpy(tokenizer.encode(CAPTIONS)), normalize=True)
        plain.text.use_pad_mask = True
        masked = plain.encode_text(torch.from_numpy(tokenizer.encode(CAPTIONS)), normalize=True)
    assert (text - unmasked).abs().max() > 1e-2
    assert (text - masked).abs().max() <= TOLERANCE


def test_mean_pooled_text_is_refused_and_leaves_nothing(tmp_path):
    config = tiny_config("resnet18")
    model = CLIP(replace(config, text=replace(config.text, pooling="mean")))
    with pytest.raises(ExportError, match="pooling='mean'"):
        export(model, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]
