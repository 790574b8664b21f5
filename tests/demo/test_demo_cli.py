"""``python -m lightclip_demo [ablate]``: help, and user errors as one line with exit code 2
before anything is built or trained."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightclip_demo.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(capsys, monkeypatch):
    """``main(args)`` in the checkout: (exit code, stderr lines)."""
    monkeypatch.chdir(REPO)

    def call(*args: str) -> tuple[int, list[str]]:
        code = main(list(args))
        return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]

    return call


def test_module_entry_point_help_names_both_commands():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for args, needle in ((["--help"], "ablate --help"), (["ablate", "--help"], "--recipe RECIPE")):
        done = subprocess.run(
            [sys.executable, "-m", "lightclip_demo", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and needle in done.stdout, done.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["colour.red=1"], ["lightclip-demo: override 'colour.red=1' must start with one of", "world."]),
        (["--world", "recipes/data/nope.yaml"], ["lightclip-demo:", "nope.yaml"]),
        (["world.no_such_key=3"], ["lightclip-demo:", "no_such_key"]),
        (["ablate", "--recipe", "recipes/ablation/nope.yaml"], ["lightclip-demo ablate:", "nope.yaml"]),
        (["ablate", "no_such_key=1"], ["lightclip-demo ablate:", "no_such_key"]),
        (["ablate", "baseline=Nobody"], ["lightclip-demo ablate: ablation.baseline 'Nobody' is not one of"]),
    ],
)
def test_user_errors_are_one_line_and_exit_2(run, tmp_path, args, needles):
    where = [f"out_dir={tmp_path / 'abl'}"] if args[0] == "ablate" else ["--out", str(tmp_path)]
    code, lines = run(*args, *where)
    assert code == 2 and len(lines) == 1, lines
    assert all(needle in lines[0] for needle in needles), lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing built, nothing written


def test_demo_refuses_a_folder_it_did_not_make(run, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    code, lines = run("--out", str(tmp_path))
    assert code == 2 and lines == [
        f"lightclip-demo: {tmp_path} is not empty and holds no demo.json: choose another --out"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]
