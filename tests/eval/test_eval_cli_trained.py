"""A model trained briefly on synthetic shards beats chance through the real `lightclip eval`."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lightclip.cli import main
from pipeline.base import shards
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer, train_tokenizer

COLOURS = {"red": (215, 35, 35), "green": (40, 165, 55), "blue": (35, 70, 215)}


def _scene(colour: str, rng: random.Random, size: int = 40) -> Image.Image:
    grey = rng.randint(150, 230)
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    r = rng.randint(size // 4, size // 3)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=COLOURS[colour])
    return image


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _samples(shard: int, per_shard: int, rng: random.Random):
    for i in range(per_shard):
        colour = rng.choice(list(COLOURS))
        caption = f"a photo of a {colour} thing"
        yield shards.Sample(f"{shard:05d}{i:04d}", _jpeg(_scene(colour, rng)), caption, {"caption": caption}, [])


def write_training_shards(folder: Path, count: int, per_shard: int) -> None:
    """Shards, manifest and sizes written by pipeline.base.shards, and a tokenizer beside them."""
    folder.mkdir(parents=True)
    rng = random.Random(0)
    infos = [shards.write_shard(folder, shard, _samples(shard, per_shard, rng)) for shard in range(count)]
    shards.write_manifest(folder, infos, {})
    # enough merges that the colour word fits in the 16-token context (byte-level otherwise)
    texts = [f"a photo of a {c} thing" for c in COLOURS] * 20
    CaptionTokenizer(train_tokenizer(texts, vocab_size=300, min_frequency=1), 16).save(folder / TOKENIZER_FILE)


def write_eval_folder(folder: Path, per_class: int) -> None:
    rng = random.Random(1)
    for colour in COLOURS:
        (folder / colour).mkdir(parents=True)
        for i in range(per_class):
            _scene(colour, rng).save(folder / colour / f"{i}.png")
    (folder / "templates.txt").write_text("a photo of a {c} thing\n")


@pytest.mark.slow
def test_trained_model_beats_chance_through_the_cli(tmp_path, capsys):
    data, run_dir, eval_dir = tmp_path / "shards", tmp_path / "run", tmp_path / "colours"
    write_training_shards(data, count=2, per_shard=160)
    write_eval_folder(eval_dir, per_class=20)
    overrides = [
        f"data.shards={data}",
        "data.workers=1",
        f"run.out_dir={run_dir}",
        "run.progress=false",
        "run.save_every=100000",
        "run.log_every=50",
        "model.image_encoder=resnet18",
        "optim.epochs=8",
        "optim.batch_size=16",
        "optim.lr=0.002",
        "loss.instance_weight=1",
        "loss.token_weight=0",
        "loss.mlm_weight=0",
    ]
    assert main(["train", "--recipe", "recipes/train/tiny.yaml", *overrides]) == 0

    out = tmp_path / "eval_out"
    code = main(
        [
            "eval",
            "--checkpoint",
            str(run_dir),
            "--datasets",
            f"imagefolder:{eval_dir},cifar10",
            "--root",
            str(tmp_path / "nothing"),
            "--out",
            str(out),
            "--batch-size",
            "30",
            "--quiet",
        ]
    )
    assert code == 1  # cifar10 is missing: reported, the folder still evaluated
    results = json.loads((out / "results.json").read_text())["results"]
    acc1 = results[f"imagefolder:{eval_dir}"]["acc1"]
    assert acc1 > 0.6, f"top-1 {acc1:.2f} on 3 classes (chance 0.33)"
    assert "cifar-10-batches-py" in results["cifar10"]["error"]
    printed = capsys.readouterr()
    assert f"| imagefolder:{eval_dir} |" in printed.out and "cifar10" not in printed.out
    assert printed.err.count("How to get it") == 1  # the missing set's message, printed once
