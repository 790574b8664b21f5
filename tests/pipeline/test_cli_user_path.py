"""The command line as a user meets it: help that lists every recipe key, fast answers, and a
clean stop on Ctrl-C or SIGTERM that keeps the finished work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_world import make_world, recipe

from pipeline.base.confighelp import iter_settings
from pipeline.build import BuildConfig
from pipeline.cli import EXIT_INTERRUPTED, STOPPED

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "recipes" / "data" / "demo.yaml")
# What makes an answer slow: none of these is imported before help or a recipe mistake is answered
# (the build's help reads the metadata settings, whose module reads tables with pandas).
HEAVY = ("torch", "dask", "distributed", "img2dataset", "webdataset", "pandas", "nlpaug")
SHOW_LOADED = """
import runpy, sys
sys.argv = ["pipeline", *sys.argv[1:]]
try:
    runpy.run_module("pipeline", run_name="__main__")
finally:
    print("LOADED " + " ".join(sorted(m for m in sys.modules if "." not in m)), file=sys.stderr)
"""


def _pipeline(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The command's result (stderr without the last line) and the top-level modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", SHOW_LOADED, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    *rest, last = done.stderr.rstrip("\n").split("\n")
    assert last.startswith("LOADED "), done.stderr
    done.stderr = "\n".join(rest) + ("\n" if rest else "")
    return done, set(last.split()[1:])


def _quick(loaded: set[str], allowed: tuple[str, ...] = ()) -> bool:
    return not (set(HEAVY) - set(allowed)) & loaded


def test_build_help_lists_every_recipe_key_with_type_and_default():
    done, loaded = _pipeline("build", "--help")
    assert done.returncode == 0 and _quick(loaded, allowed=("pandas",))
    lines = done.stdout.splitlines()
    for setting in iter_settings(BuildConfig):
        line = next((x for x in lines if x.split()[:1] == [setting.key]), None)
        assert line is not None, setting.key
        assert f"{setting.type} = {setting.default}" in line
    assert "download.thread_count  int = 32" in done.stdout
    assert "download threads per task" in done.stdout


def test_top_help_speaks_of_images_and_captions_and_is_fast():
    done, loaded = _pipeline("--help")
    assert done.returncode == 0 and _quick(loaded)
    assert "image URLs and captions" in done.stdout and "rejects" in done.stdout


def test_a_user_error_is_one_fast_line(tmp_path):
    done, loaded = _pipeline("build", "--recipe", str(tmp_path / "none.yaml"))
    assert done.returncode == 2 and _quick(loaded)
    assert len(done.stderr.strip().splitlines()) == 1 and "does not exist" in done.stderr


@pytest.mark.parametrize(
    ("recipe_text", "override", "message"),
    [
        ("output: x\n", "download.thread_count=[", "override 'download.thread_count=[' is not valid YAML"),
        ("metadata: [\n", "output=x", "is not valid YAML"),
    ],
)
def test_broken_yaml_is_one_fast_line(tmp_path, recipe_text, override, message):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(recipe_text)
    done, loaded = _pipeline("build", "--recipe", str(recipe_file), override)
    assert done.returncode == 2 and _quick(loaded)
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr


def _start_slow_build(tmp_path: Path, *cluster: str) -> tuple[subprocess.Popen, Path, object]:
    world = make_world(tmp_path / "world", good=24, delay_s=0.4)
    out = tmp_path / "out"
    overrides = recipe(world, out) + [
        "augment.variants=0",
        "augment.methods=[swap]",
        "download.thread_count=1",
        *cluster,
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", "--recipe", DEMO, *overrides],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "_work" / "units").is_dir():  # downloads have started
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    time.sleep(0.5)
    return process, out, world


def _check_stopped(process: subprocess.Popen, out: Path) -> None:
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert stderr.strip().splitlines() == [f"python -m pipeline build: {STOPPED}"]
    assert (out / "_work" / "fingerprint.json").is_file()  # partial state kept for the rerun
    assert list((out / "_work" / "filtered").glob("*.parquet"))


@pytest.mark.timeout(120)
def test_sigterm_stops_with_one_line_and_exit_130(tmp_path):
    process, out, world = _start_slow_build(tmp_path, "cluster.processes=false", "cluster.n_workers=1")
    try:
        process.send_signal(signal.SIGTERM)
        _check_stopped(process, out)
    finally:
        process.kill()
        world.server.stop()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ctrl_c_to_the_whole_process_group_stops_workers_quietly(tmp_path):
    process, out, world = _start_slow_build(tmp_path, "cluster.processes=true", "cluster.n_workers=1")
    try:
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _check_stopped(process, out)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        world.server.stop()
