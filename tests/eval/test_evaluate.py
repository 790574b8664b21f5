"""evaluate_model end to end on fabricated sets: known numbers, missing sets, reports."""

from __future__ import annotations

import json
import math
import re

import eval_fabricate as fab
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightclip.evaluation import EvalConfig, evaluate_model, write_results, zero_shot_classifier

COLOUR_WORDS = ("red", "green", "blue")


class ColourTokenizer:
    """Encodes a text as the id of the first colour word in it (stand-in for CaptionTokenizer)."""

    context_length = 77

    def encode(self, texts: list[str]) -> np.ndarray:
        ids = [next(i for i, w in enumerate(COLOUR_WORDS) if re.search(rf"\b{w}\b", t)) for t in texts]
        return np.array(ids, dtype=np.int64)[:, None]


class ColourModel(torch.nn.Module):
    """Image -> one-hot of its brightest channel, text -> one-hot of its colour word."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.one_hot(images.mean(dim=(2, 3)).argmax(dim=1), 3).float()

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.one_hot(tokens[:, 0], 3).float()


def test_perfect_model_scores_100_through_the_real_loaders(tmp_path):
    fab.image_folder(tmp_path / "colours", {"red": 2, "green": 3, "blue": 1})
    fab.wds_retrieval(tmp_path / "pairs", [["red", "a red one"], ["green"], ["blue", "blue sky", "deep blue"]])
    config = EvalConfig(
        ["imagefolder:colours", "wds:pairs"], str(tmp_path), batch_size=2, image_size=16, progress=False
    )
    results = evaluate_model(ColourModel(), ColourTokenizer(), config)
    cls = results["imagefolder:colours"]
    assert cls["acc1"] == 1.0 and cls["mean_per_class_recall"] == 1.0 and math.isnan(cls["acc5"])
    assert cls["num_samples"] == 6 and cls["num_classes"] == 3
    ret = results["wds:pairs"]
    assert ret["num_images"] == 3 and ret["num_texts"] == 6
    assert ret["text_retrieval_recall@1"] == 1.0 and ret["image_retrieval_recall@1"] == 1.0


def test_a_model_that_confuses_two_classes_scores_the_known_numbers(tmp_path):
    class Confused(ColourModel):  # sees green as red
        def encode_image(self, images):
            out = super().encode_image(images)
            return torch.where(out[:, 1:2] == 1, torch.tensor([1.0, 0, 0]), out)

    fab.image_folder(tmp_path / "colours", {"red": 2, "green": 3, "blue": 1})
    config = EvalConfig(["imagefolder:colours"], str(tmp_path), batch_size=4, image_size=16, progress=False)
    out = evaluate_model(Confused(), ColourTokenizer(), config)["imagefolder:colours"]
    assert out["acc1"] == 0.5  # 3 of 6 right
    assert out["mean_per_class_recall"] == pytest.approx(2 / 3)  # blue 1, green 0, red 1


def test_missing_dataset_is_reported_and_the_others_still_run(tmp_path, model, tokenizer):
    fab.image_folder(tmp_path / "pics", {"red": 2, "blue": 2}, size=32)
    fab.karpathy(tmp_path / "flickr30k", "dataset_flickr30k.json", ["test"] * 3, "flickr30k-images")
    model.train()
    config = EvalConfig(
        ["cifar10", "imagefolder:pics", "flickr30k", "nonsense"], str(tmp_path), batch_size=2, image_size=32
    )
    results = evaluate_model(model, tokenizer, config)
    assert list(results) == ["cifar10", "imagefolder:pics", "flickr30k", "nonsense"]
    assert "cifar-10-batches-py" in results["cifar10"]["error"]
    assert "unknown dataset" in results["nonsense"]["error"]
    assert 0.0 <= results["imagefolder:pics"]["acc1"] <= 1.0
    assert results["flickr30k"]["num_texts"] == 15
    assert 0.0 <= results["flickr30k"]["text_retrieval_recall@10"] <= 1.0
    assert model.training  # mode restored
    model.eval()

    json_path, md_path = write_results(results, tmp_path / "out", {"checkpoint": "x"})
    saved = json.loads(json_path.read_text())
    assert saved["results"]["flickr30k"] == results["flickr30k"] and saved["meta"] == {"checkpoint": "x"}
    table = md_path.read_text()
    assert "| imagefolder:pics |" in table and "| flickr30k |" in table
    assert "**cifar10: not evaluated.**" in table and "**nonsense: not evaluated.**" in table


def test_classifier_is_renormalised_mean_of_template_embeddings(model, tokenizer):
    templates = ["a photo of a {c}.", "{c}"]
    weights = zero_shot_classifier(model, tokenizer, ["red", "blue"], templates, torch.device("cpu"))
    assert weights.shape == (2, 32)
    with torch.no_grad():
        tokens = torch.from_numpy(tokenizer.encode(["a photo of a blue.", "blue"]))
        expected = F.normalize(F.normalize(model.encode_text(tokens), dim=-1).mean(0), dim=-1)
    torch.testing.assert_close(weights[1], expected)
    torch.testing.assert_close(weights.norm(dim=-1), torch.ones(2))


def test_cli_rejects_unknown_dataset_and_missing_checkpoint(tmp_path, capsys):
    from lightclip.cli import main

    (tmp_path / "present.pt").write_bytes(b"names are checked before a checkpoint is read")
    assert main(["eval", "--checkpoint", str(tmp_path / "present.pt"), "--datasets", "cifar11"]) == 2
    assert "unknown dataset 'cifar11'" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--datasets", "cifar10"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_images_are_evaluated_at_the_models_own_size_unless_told(tmp_path):
    """A model trained at 24 px is evaluated at 24 px (not at a 224 px default)."""
    from types import SimpleNamespace

    class SizedModel(ColourModel):
        config = SimpleNamespace(image_size=24, text=SimpleNamespace(context_length=77))

        def encode_image(self, images):
            assert images.shape[-2:] == (self.seen, self.seen)
            return super().encode_image(images)

    fab.image_folder(tmp_path / "colours", {"red": 2, "green": 1, "blue": 1})
    model = SizedModel()
    model.seen = 24
    config = EvalConfig(["imagefolder:colours"], str(tmp_path), batch_size=4, progress=False, strict=True)
    assert evaluate_model(model, ColourTokenizer(), config)["imagefolder:colours"]["acc1"] == 1.0
    model.seen = 16  # an explicit size still wins
    explicit = EvalConfig(
        ["imagefolder:colours"], str(tmp_path), batch_size=4, image_size=16, progress=False, strict=True
    )
    assert evaluate_model(model, ColourTokenizer(), explicit)["imagefolder:colours"]["acc1"] == 1.0
