"""The Python snippets of the README and of docs/*.md run as written: each as a script in a fresh
folder outside the checkout, against the package as pip installs it (recipes included), nothing
else on the path. A Python block that no test here runs fails the first test."""

from __future__ import annotations

import dataclasses
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

from lightclip.checkpoint import (
    checkpoint_path,
    load_inference_model,
    run_tokenizer,
    save_checkpoint,
)
from lightclip.evaluation import EvalConfig, evaluate_model
from lightclip.export import ExportConfig, export_model
from lightclip.models import ModelConfig, TextConfig
from lightclip.task import LightCLIP
from lightclip_demo.localserver import LocalServer
from pipeline.base.tokenizer import CaptionTokenizer, train_tokenizer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CAPTIONS = [
    "a red square on grey",
    "a blue circle on grey",
    "a green triangle on white",
    "a yellow star on black",
    "a purple square on white",
    "a red circle on black",
]


KINDS = {
    "build": "from pipeline.build import",
    "load": "from lightclip.inference import load",
    "augment": "from pipeline.base.augment_image import",
    "evaluate": "from lightclip.evaluation import",
    "open_clip": "from lightclip.interop.openclip_load import",
}


def pages() -> list[Path]:
    """The README and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def kind_of(code: str) -> str | None:
    """The snippet's kind, by the import that names what it does."""
    return next((kind for kind, marker in KINDS.items() if marker in code), None)


def snippets() -> dict[str, str]:
    """Python blocks of the docs by kind; an unknown or repeated block gets a key naming it."""
    found: dict[str, str] = {}
    for page in pages():
        for code in FENCE.findall(page.read_text()):
            kind = kind_of(code) or f"unknown in {page.name}: {code.splitlines()[0]}"
            found[kind if kind not in found else f"repeated {kind} in {page.name}"] = code
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install --target``: the wheel's files in a folder of their own."""
    source, target = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("site")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for name in ("lightclip", "lightclip_demo", "pipeline", "recipes"):  # a copy: the build leaves build/ behind
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "pipeline" / "recipes" / "data" / "demo.yaml").is_file()
    return target


def run_script(code: str, folder: Path, site: Path) -> subprocess.CompletedProcess:
    """Run ``code`` as ``snippet.py`` in ``folder``; it must import the installed copy."""
    check = (
        "import sys, pipeline, lightclip\n"
        f"assert all(m.__file__.startswith({str(site)!r}) for m in (pipeline, lightclip)), sys.path\n"
    )
    (folder / "snippet.py").write_text(code + "\n" + check)
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "NLTK_DATA": os.environ.get("NLTK_DATA", str(ROOT / ".nltk_data")),
    }
    return subprocess.run(
        [sys.executable, "snippet.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )


def test_every_python_snippet_of_the_docs_is_one_this_file_runs():
    assert set(snippets()) == set(KINDS)


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
    CaptionTokenizer(train_tokenizer(CAPTIONS * 10 + ["a cat", "a dog", "a photo of a cat."], vocab_size=300), 16).save(
        tokenizer
    )
    work = tmp_path / "work"
    export_model(LightCLIP(config), config, tokenizer, work / "exports" / "tiny", ExportConfig(exporter="torchscript"))
    Image.new("RGB", (60, 50), (200, 120, 40)).save(work / "cat.jpg")
    Image.new("RGB", (50, 60), (40, 40, 40)).save(work / "dog.jpg")
    code = snippets()["load"] + "\nprint(tuple(probs.shape), tuple(image_emb.shape), tuple(pixels.shape))\n"
    done = run_script(code, work, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "(2, 2) (1, 32) (3, 32, 32)"


def test_augment_snippet_runs_outside_the_checkout(installed, tmp_path):
    done = run_script(snippets()["augment"], tmp_path, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "(2, 3, 64, 64) torch.float32"


def fabricate_run(run: Path) -> Path:
    """A run folder as training leaves it: one checkpoint (model config + weights), its tokenizer."""
    torch.manual_seed(0)
    text = TextConfig(vocab_size=300, context_length=16, width=32, heads=2, layers=2, stages=2)
    config = ModelConfig(image_encoder="mobilenet_v2", image_size=32, embed_dim=32, text=text)
    run.mkdir(parents=True)
    CaptionTokenizer(train_tokenizer(CAPTIONS * 10, vocab_size=300), 16).save(run_tokenizer(run))
    state = {"model": LightCLIP(config).state_dict(), "config": {"model": dataclasses.asdict(config)}}
    return save_checkpoint(state, checkpoint_path(run, 1))


def test_evaluate_snippet_runs_outside_the_checkout(installed, tmp_path):
    work = tmp_path / "work"
    checkpoint = fabricate_run(work / "runs" / "tiny")
    colours = {"red": (200, 30, 30), "blue": (30, 30, 200), "green": (30, 180, 30)}
    for name, colour in colours.items():
        (work / "zeroshot" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40 + i, 36), colour).save(work / "zeroshot" / name / f"{i}.png")
    done = run_script(snippets()["evaluate"], work, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    model, _ = load_inference_model(checkpoint)
    tokenizer = CaptionTokenizer.from_file(run_tokenizer(work / "runs" / "tiny"))
    config = EvalConfig(datasets=[f"imagefolder:{work / 'zeroshot'}"], progress=False)
    expected = evaluate_model(model, tokenizer, config)[config.datasets[0]]
    assert expected["num_samples"] == 12
    assert float(done.stdout.split("\n")[-2]) == pytest.approx(expected["acc1"])


def test_open_clip_snippet_runs_outside_the_checkout(installed, tmp_path):
    pytest.importorskip("open_clip", reason="the interop extra")
    torch.manual_seed(0)
    text = TextConfig(vocab_size=300, context_length=16, width=32, heads=2, layers=2, stages=2)
    config = ModelConfig(image_encoder="resnet18", image_size=224, embed_dim=32, text=text)
    tokenizer = tmp_path / "tokenizer.json"
    CaptionTokenizer(
        train_tokenizer(CAPTIONS * 10 + ["a photo of a cat", "a photo of a dog"], vocab_size=300), 16
    ).save(tokenizer)
    work = tmp_path / "work"
    export_model(
        LightCLIP(config), config, tokenizer, work / "exports" / "resnet18_open_clip", ExportConfig(format="open_clip")
    )
    Image.new("RGB", (60, 50), (200, 120, 40)).save(work / "cat.jpg")
    code = snippets()["open_clip"] + "\nprint(tuple(model.encode_text(tokenizer(['a cat'])).shape))\n"
    done = run_script(code, work, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "(1, 32)"
