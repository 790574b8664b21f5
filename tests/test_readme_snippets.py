"""The README's Python snippets run as written: each as a script in a fresh folder outside the
checkout, against the package as pip installs it (recipes included), nothing else on the path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightclip.export import ExportConfig, export_model
from lightclip.models import LightCLIP, ModelConfig, TextConfig
from lightclip_demo.localserver import LocalServer
from pipeline.tokenizer import CaptionTokenizer, train_tokenizer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CAPTIONS = ["a red square on grey", "a blue circle on grey", "a green triangle on white",
            "a yellow star on black", "a purple square on white", "a red circle on black"]  # fmt: skip


def snippets() -> dict[str, str]:
    """Python blocks of the README by the first line that names what they do."""
    found = {}
    for code in FENCE.findall((ROOT / "README.md").read_text()):
        if "from pipeline.build import" in code:
            found["build"] = code
        elif "from lightclip.inference import load" in code:
            found["load"] = code
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install --target``: the wheel's files in a folder of their own."""
    source, target = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("site")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for name in ("lightclip", "pipeline", "recipes"):  # a copy: the build leaves build/ behind
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    assert (target / "pipeline" / "recipes" / "data" / "demo.yaml").is_file()
    return target


def run_script(code: str, folder: Path, site: Path) -> subprocess.CompletedProcess:
    """Run ``code`` as ``snippet.py`` in ``folder``; it must import the installed copy."""
    check = ("import sys, pipeline, lightclip\n"
             f"assert all(m.__file__.startswith({str(site)!r}) for m in (pipeline, lightclip)), sys.path\n")  # fmt: skip
    (folder / "snippet.py").write_text(code + "\n" + check)
    env = {**os.environ, "PYTHONPATH": str(site), "NO_ALBUMENTATIONS_UPDATE": "1",
           "NLTK_DATA": os.environ.get("NLTK_DATA", str(ROOT / ".nltk_data"))}  # fmt: skip
    return subprocess.run([sys.executable, "snippet.py"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_the_readme_has_the_snippets_this_test_runs():
    assert set(snippets()) == {"build", "load"}


def test_build_snippet_runs_outside_the_checkout(installed, tmp_path):
    images = tmp_path / "served"
    images.mkdir()
    colours = [(200, 30, 30), (30, 30, 200), (30, 180, 30), (220, 220, 30), (140, 30, 160), (200, 30, 30)]
    for i, colour in enumerate(colours * 4):
        Image.new("RGB", (80, 72), colour).save(images / f"{i:02d}.jpg")
    work = tmp_path / "work"
    work.mkdir()
    with LocalServer(images) as server:
        rows = [{"url": server.url(f"/{i:02d}.jpg"), "caption": CAPTIONS[i % 6]} for i in range(24)]
        (work / "world.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        done = run_script(snippets()["build"], work, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "24 samples in 1 shards at data/demo" in done.stdout
    manifest = json.loads((work / "data" / "demo" / "manifest.json").read_text())
    assert manifest["total_samples"] == 24


def test_load_snippet_runs_outside_the_checkout(installed, tmp_path):
    torch.manual_seed(0)
    text = TextConfig(vocab_size=300, context_length=16, width=32, heads=2, layers=2, stages=2)
    config = ModelConfig(image_encoder="mobilenet_v2", image_size=32, embed_dim=32, text=text)
    tokenizer = tmp_path / "tokenizer.json"
    CaptionTokenizer(train_tokenizer(CAPTIONS * 10 + ["a cat", "a dog", "a photo of a cat."],
                                     vocab_size=300), 16).save(tokenizer)  # fmt: skip
    work = tmp_path / "work"
    export_model(LightCLIP(config), config, tokenizer, work / "exports" / "tiny", ExportConfig(exporter="torchscript"))
    Image.new("RGB", (60, 50), (200, 120, 40)).save(work / "cat.jpg")
    Image.new("RGB", (50, 60), (40, 40, 40)).save(work / "dog.jpg")
    code = snippets()["load"] + "\nprint(tuple(probs.shape), tuple(image_emb.shape), tuple(pixels.shape))\n"
    done = run_script(code, work, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "(2, 2) (1, 32) (3, 32, 32)"
