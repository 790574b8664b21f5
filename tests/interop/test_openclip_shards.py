"""open_clip's own training loader and trainer read the pipeline's shards, in this environment."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import write_shards

from pipeline.base import shards

pytestmark = [pytest.mark.slow, pytest.mark.interop]
pytest.importorskip("open_clip", reason="the interop extra: pip install -e '.[interop]'")
ROOT = Path(__file__).resolve().parents[2]
COUNTS = [5, 4]  # 9 samples in 2 shards, counted from sizes.json
TINY = {  # a small open_clip model: timm resnet18 tower, 2-layer text transformer
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 32,
        "timm_model_name": "resnet18",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
    },
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, COUNTS, variants=True)
    return folder


def pattern(folder: Path) -> str:
    return str(folder / shards.shard_pattern(len(COUNTS)))


def wds_args(folder: Path, *extra: str):
    from open_clip_train.params import parse_args

    args = parse_args(
        [
            "--train-data",
            pattern(folder),
            "--val-data",
            pattern(folder),
            "--dataset-type",
            "webdataset",
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--seed",
            "0",
            *extra,
        ]
    )
    args.world_size, args.rank = 1, 0  # what open_clip_train.main sets for one process
    return args


def test_get_wds_dataset_counts_and_decodes_our_shards(shard_dir):
    import open_clip
    from open_clip_train.data import get_wds_dataset

    preprocess = open_clip.image_transform(32, is_train=False)
    tokenizer = open_clip.get_tokenizer("RN50", context_length=16)
    args = wds_args(shard_dir)
    train = get_wds_dataset(args, preprocess, is_train=True, tokenizer=tokenizer)
    assert train.dataloader.num_samples == 12  # sizes.json's 9, rounded up to whole batches of 4
    images, texts = next(iter(train.dataloader))  # open_clip's own tar reader (KeyError 'fname' at webdataset 0.2.111)
    assert images.shape == (4, 3, 32, 32) and texts.shape == (4, 16)
    val = get_wds_dataset(
        wds_args(shard_dir, "--val-num-samples", "9"), preprocess, is_train=False, tokenizer=tokenizer
    )
    images, texts = zip(*[(i, t) for batch in val.dataloader for i, t in zip(*batch)])
    assert len(images) == sum(COUNTS)
    first = next(shards.iter_samples(shard_dir / shards.shard_name(0)))
    expected_image = preprocess(Image.open(io.BytesIO(first["jpg"])).convert("RGB"))
    assert torch.allclose(images[0], expected_image)
    assert torch.equal(texts[0], tokenizer(first["txt"].decode())[0])


@pytest.mark.timeout(300)
def test_open_clip_trains_one_step_on_our_shards(shard_dir, tmp_path):
    model_dir = tmp_path / "tiny"
    model_dir.mkdir()
    (model_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY}))
    command = [
        sys.executable,
        "-m",
        "open_clip_train.main",
        "--train-data",
        pattern(shard_dir),
        "--dataset-type",
        "webdataset",
        "--train-num-samples",
        "4",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--epochs",
        "1",
        "--model",
        f"local-dir:{model_dir}",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--warmup",
        "1",
        "--lr",
        "1e-3",
        "--save-frequency",
        "0",
        "--zeroshot-frequency",
        "0",
        "--val-frequency",
        "0",
        "--report-to",
        "",
        "--log-every-n-steps",
        "1",
        "--logs",
        str(tmp_path / "logs"),
        "--name",
        "ours",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    losses = [float(x) for x in re.findall(r"Contrastive_loss: ([0-9.]+)", output)]
    assert losses and all(0 < loss < 10 for loss in losses), output[-3000:]
