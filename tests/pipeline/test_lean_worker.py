"""Build workers refuse torch and scipy.stats: webdataset, nlpaug and NLTK take their fallback
paths; the caller's process is never touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cluster import ClusterConfig, open_client

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_hook_refuses_torch_and_webdataset_falls_back():
    out = run_python(
        "from pipeline.lean_worker import refuse_imports\n"
        "assert refuse_imports() and not refuse_imports()  # installed once\n"
        "try:\n    import torch.nn\nexcept ModuleNotFoundError as e:\n    print('refused', e.name)\n"
        "import webdataset, webdataset.pytorch as p\n"
        "print(p.TorchTensor.__module__, 'torch' in __import__('sys').modules)\n"
    )
    assert out.splitlines() == ["refused torch", "webdataset.pytorch False"]


def test_a_process_with_torch_loaded_is_left_alone():
    out = run_python("import torch\nfrom pipeline.lean_worker import refuse_imports\nprint(refuse_imports())")
    assert out == "False"


def worker_modules() -> tuple[bool, bool, bool]:
    from pipeline.startup import STARTUP, img2dataset_downloader

    with STARTUP:  # like the build's tasks: the preload's background import of img2dataset may
        import nlpaug.augmenter.word  # noqa: F401 - be running (unlocked imports race in wandb)

        img2dataset_downloader()

    return "torch" in sys.modules, "scipy.stats" in sys.modules, "img2dataset" in sys.modules


@pytest.mark.parametrize(("lean", "loaded"), [(True, False), (False, True)])
def test_local_cluster_workers_import_the_build_stack_without_torch(lean, loaded):
    config = ClusterConfig(n_workers=1, processes=True, lean_workers=lean, dashboard_address="")
    with open_client(config, log=lambda _: None) as client:
        assert set(client.run(worker_modules).values()) == {(loaded, loaded, True)}
