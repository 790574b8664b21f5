"""The suite's table of what each term reached, from runs' metrics.jsonl and config.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from lightclip_demo.suite_terms import run_terms, terms_table, token_chance, variant_terms


def fake_run(folder: Path, token: float, negatives: str = "pair", steps: int = 10) -> Path:
    folder.mkdir(parents=True)
    config = {
        "model": {"image_size": 32, "token_stage": 3},
        "loss": {"token_weight": 0.1, "token": {"negatives": negatives}},
        "optim": {"batch_size": 64},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    lines = [
        {
            "step": s,
            "loss": 1.0,
            "instance_onehot": 2.0 + s,
            "logit_scale": 14.0,
            "token": token,
            "mlm_text": 4.0,
            "mlm_fused": 3.5,
        }
        for s in range(steps)
    ]
    lines.insert(3, {"step": 3, "eval/x/acc1": 0.5})  # an evaluation-only line is not a training line
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"step": 10, "loss"'  # torn last line
    (folder / "metrics.jsonl").write_text(text)
    return folder


def test_tail_means_chance_and_gap(tmp_path):
    terms = run_terms(fake_run(tmp_path / "a", token=0.3))
    assert terms["instance_onehot"] == pytest.approx(2.0 + 8.5)  # last fifth of 10 steps: steps 8 and 9
    assert terms["token"] == pytest.approx(0.3)
    assert terms["token chance"] == pytest.approx(math.log(4))  # 2x2 positions at 32 px, stage 3
    assert terms["MLM gap"] == pytest.approx(0.5)


def test_batch_negatives_chance_counts_every_patch_of_the_batch(tmp_path):
    terms = run_terms(fake_run(tmp_path / "b", token=3.0, negatives="batch"))
    assert terms["token chance"] == pytest.approx(math.log(4 * 64))


def test_no_token_term_no_chance():
    assert token_chance({"loss": {"token_weight": 0}}) is None


def test_variant_means_over_seeds_and_table(tmp_path):
    runs = [fake_run(tmp_path / "s0", token=0.2), fake_run(tmp_path / "s1", token=0.4)]
    assert variant_terms(runs)["token"] == pytest.approx(0.3)
    table = terms_table("demo", {"LightCLIP": runs, "missing": [tmp_path / "none"]})
    assert "| LightCLIP | 10.500 | 14.000 | 0.300 | 1.386 | 4.000 | 3.500 | 0.500 |" in table
    assert "| missing | - | - | - | - | - | - | - |" in table
