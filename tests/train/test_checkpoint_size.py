"""``run.save_optimizer: auto``: AdamW's moments in every checkpoint a run may resume from, not in
the final checkpoint of a completed run (a third of the size)."""

from __future__ import annotations

import pytest
from helpers import tiny_config
from synthetic import write_shards

from lightclip.checkpoint import checkpoint_path, load_checkpoint
from lightclip.trainconfig import RunConfig
from lightclip.training import train
from lightclip.training.state import keeps_optimizer


@pytest.mark.timeout(300)
def test_final_checkpoint_of_a_completed_run_is_weights_and_state_only(tmp_path):
    write_shards(tmp_path / "shards", [8, 8])
    run = tmp_path / "run"
    result = train(
        tiny_config(
            tmp_path / "shards",
            run,
            "optim.batch_size=4",
            "optim.max_steps=2",
            "run.save_every=1",
            "run.keep=0",
            "data.workers=0",
        )
    )
    step, final = checkpoint_path(run, 1), checkpoint_path(run, 2)
    assert result.checkpoint == final and result.step == 2
    kept, last = load_checkpoint(step), load_checkpoint(final)
    assert "optimizer" in kept and "scaler" in kept
    assert "optimizer" not in last and "scaler" not in last
    assert {"step", "config", "model", "rng", "data", "counters"} <= set(last) and last["step"] == 2
    assert final.stat().st_size < 0.4 * step.stat().st_size


@pytest.mark.parametrize("setting, periodic, final", [("auto", True, False), (True, True, True), (False, False, False)])
def test_save_optimizer_settings(setting, periodic, final):
    run = RunConfig(save_optimizer=setting)
    assert (keeps_optimizer(run, final=False), keeps_optimizer(run, final=True)) == (periodic, final)
