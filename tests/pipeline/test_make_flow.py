"""The README's flow with its own defaults, as a user types it: ``make data`` (YFCC15M-V2
metadata served on loopback) -> ``make train ENCODER=swin_nano`` -> ``make eval`` -> ``make
export``, shrunk by ``ARGS`` only. Runs in a scratch folder that links the Makefile, recipes
and virtual environment of this checkout."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from lightclip_demo.localserver import LocalServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
LINKED = ("Makefile", "mk", "recipes", ".venv", "pyproject.toml", "constraints.txt", ".nltk_data")
COLOURS = {"red": (210, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 210), "yellow": (220, 210, 30)}
DATA_ARGS = (
    "filters.allow_hosts=[127.0.0.1] download.image_size=64 download.thread_count=8 "
    "download.samples_per_unit=32 augment.variants=1 augment.methods=[swap] shards.samples_per_shard=24 "
    "tokenizer.vocab_size=400 tokenizer.min_frequency=1 cluster.n_workers=1 "
    "cluster.processes=false cluster.dashboard_address=:0 progress=false"
)
TRAIN_ARGS = (
    "model.image_size=64 model.embed_dim=32 model.text.width=32 model.text.heads=2 "
    "model.text.context_length=16 optim.batch_size=8 optim.max_steps=2 data.workers=1 "
    "run.device=cpu run.tensorboard=false run.progress=false run.threads=1"
)


def make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``make ARGS`` in ``folder``; ``-o`` keeps make from reinstalling the shared venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", *args],
        cwd=folder,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
    )


def served_world(folder: Path) -> Path:
    """48 coloured squares; captions name the colour."""
    folder.mkdir()
    for i in range(48):
        name = list(COLOURS)[i % 4]
        Image.new("RGB", (80 + i % 5, 72), COLOURS[name]).save(folder / f"{i:03d}.jpg")
    return folder


def zeroshot_set(folder: Path) -> None:
    for name, colour in COLOURS.items():
        (folder / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (70, 70), tuple(max(0, c - 20 * i) for c in colour)).save(folder / name / f"{i}.jpg")


def test_make_data_train_eval_export_with_the_readme_defaults(tmp_path):
    work = tmp_path / "checkout"
    work.mkdir()
    for name in LINKED:
        (work / name).symlink_to(ROOT / name)
    zeroshot_set(work / "zs")
    refused = make(work, "train", "ENCODER=swin_nano")
    assert refused.returncode == 2
    assert "no shards in data/yfcc15m_v2: run make data first" in refused.stderr

    with LocalServer(served_world(tmp_path / "images")) as server:
        rows = [
            {
                "url": server.url(f"/{i:03d}.jpg"),
                "caption": f"a {list(COLOURS)[i % 4]} square photo",
                "filename": f"{i:03d}.jpg",
            }
            for i in range(48)
        ]
        (work / "yfcc15m_clean_open_data.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        data = make(work, "data", "METADATA=yfcc15m_clean_open_data.json", f"ARGS={DATA_ARGS}")
    assert data.returncode == 0, data.stderr[-3000:]
    manifest = json.loads((work / "data" / "yfcc15m_v2" / "manifest.json").read_text())
    assert manifest["total_samples"] == 48 and manifest["num_shards"] == 2
    assert not (work / "data" / "yfcc15m_v2" / "_work").exists()  # the YFCC recipe: keep_work false
    assert "INFO" not in data.stderr

    train = make(work, "train", "ENCODER=swin_nano", f"ARGS={TRAIN_ARGS}")
    assert train.returncode == 0, train.stderr[-3000:]
    assert "final checkpoint: runs/swin_nano/checkpoints/step_00000002.pt" in train.stdout
    assert "precision bf16" in train.stderr and "48 samples per epoch from 2 shard(s) (data/yfcc15m_v2)" in train.stderr

    evaluated = make(work, "eval", "DATASETS=imagefolder:zs", "ROOT=.", "ARGS=--quiet --batch-size 8")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    results = json.loads((work / "runs" / "swin_nano" / "eval" / "step_00000002" / "results.json").read_text())
    assert results["results"]["imagefolder:zs"]["num_classes"] == 4

    exported = make(work, "export", "ARGS=--exporter torchscript")
    assert exported.returncode == 0, exported.stderr[-3000:]
    out = work / "exports" / "swin_nano"
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "image_encoder.onnx",
        "text_encoder.onnx",
    }
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    checkpoint = work / "runs" / "swin_nano" / "checkpoints" / "step_00000002.pt"
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o666 & ~umask
