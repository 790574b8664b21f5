"""`bench/profile_step.py` at the tiny size: each term's step time and the top operators land in its JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_profile_step_times_each_term_and_lists_operators(tmp_path):
    out = tmp_path / "profile.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run(
        [sys.executable, "bench/profile_step.py", "--tiny", "--top", "5", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["terms"]) == [
        "CLIP recipe",
        "LightCLIP instance loss only",
        "+ token",
        "+ MLM/fusion",
        "LightCLIP (all terms)",
    ]
    assert all(row["step_s"] > 0 for row in result["terms"].values())
    assert result["terms"]["CLIP recipe"]["matching"] is None  # no token term, no matching
    assert result["terms"]["+ token"]["matching"]["solve_ms"] > 0
    assert 1 <= len(result["top_operators"]) <= 5
    assert all(row["self_cpu_ms"] > 0 for row in result["top_operators"])  # CPU: sorted by CPU self time
