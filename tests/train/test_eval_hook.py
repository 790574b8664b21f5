"""The periodic evaluation hook logs lightclip.evaluation's metrics into metrics.jsonl."""

from __future__ import annotations

import json
import random

import pytest
from helpers import tiny_config
from synthetic import CLASSES, draw_shape, write_shards

from lightclip.checkpoint import run_metrics
from lightclip.evalconfig import EvalConfig


@pytest.mark.slow
def test_eval_every_logs_flattened_metrics(tmp_path):
    write_shards(tmp_path / "shards", [8, 8])
    rng = random.Random(0)
    for colour, shape in CLASSES[:3]:
        folder = tmp_path / "eval" / f"{colour} {shape}"
        folder.mkdir(parents=True)
        for i in range(2):
            draw_shape(colour, shape, rng).save(folder / f"{i}.png")
    name = f"imagefolder:{tmp_path / 'eval'}"
    cfg = tiny_config(
        tmp_path / "shards",
        tmp_path / "run",
        "model.image_encoder=mobilenet_v2",
        "optim.batch_size=8",
        "optim.max_steps=3",
        "data.workers=0",
        "eval_every=2",
        "run.log_every=5",
    )
    cfg.eval = EvalConfig([name], str(tmp_path), image_size=32, context_length=16, batch_size=6, progress=False)
    from lightclip.training import train

    train(cfg)
    rows = [json.loads(line) for line in run_metrics(tmp_path / "run").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3]  # the evaluation step is logged off the log grid
    acc1 = rows[0][f"eval/{name}/acc1"]
    assert 0.0 <= acc1 <= 1.0 and rows[0][f"eval/{name}/num_samples"] == 6
    assert f"eval/{name}/acc1" not in rows[1]
