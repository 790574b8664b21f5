"""`lightclip eval --model openclip:...` on the sets a checkpoint is evaluated on, CLIP_benchmark
result files, and `lightclip results merge`."""

from __future__ import annotations

import csv
import json

import pytest
from eval_fabricate import wds_retrieval
from test_eval_cli_trained import write_eval_folder
from test_export_cli import write_run

from lightclip.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.interop]
pytest.importorskip("open_clip", reason="the interop extra: pip install -e '.[interop]'")
TINY = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 32,
        "timm_model_name": "resnet18",
        "timm_model_pretrained": False,
        "timm_pool": "avg",
        "timm_proj": "linear",
    },
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def strict(path):
    def refuse(name):
        raise AssertionError(f"{path}: {name} in JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("interop_eval")
    write_run(root / "run", "resnet18")
    assert main(["export", "--checkpoint", str(root / "run"), "--out", str(root / "oc"), "--format", "open_clip"]) == 0
    write_eval_folder(root / "folder", per_class=3)
    wds_retrieval(root / "pairs", [["a photo of a cat", "a cat"], ["a dog"], ["a red car", "a car on the road"]])
    return root, f"imagefolder:{root / 'folder'},wds:{root / 'pairs'}"


def evaluate(root, datasets, out, *model):
    code = main(["eval", *model, "--datasets", datasets, "--out", str(root / out), "--device", "cpu", "--quiet"])
    assert code == 0
    return strict(root / out / "results.json")["results"]


def test_open_clip_export_scores_as_the_checkpoint_and_merges(setup, capsys):
    root, datasets = setup
    ours = evaluate(root, datasets, "ours", "--checkpoint", str(root / "run"))
    theirs = evaluate(root, datasets, "theirs", "--model", f"openclip:local-dir:{root / 'oc'}")
    assert set(ours) == set(theirs) == set(datasets.split(","))
    for name, metrics in ours.items():
        assert "error" not in metrics
        assert theirs[name] == pytest.approx(metrics, abs=1e-9), name
    files = sorted((root / "theirs").glob("benchmark_*.json"))
    assert len(files) == 2
    record = strict(files[0])
    assert record["model"] == f"local-dir:{root / 'oc'}" and record["pretrained"] == "random-init"
    assert {strict(f)["task"] for f in files} == {"zeroshot_classification", "zeroshot_retrieval"}
    assert main(["results", "merge", str(root / "ours"), str(root / "theirs"), "-o", str(root / "all.csv")]) == 0
    rows = list(csv.DictReader((root / "all.csv").open()))
    assert len(rows) == 4
    folder = f"imagefolder:{root / 'folder'}"
    by_model = {r["model"]: r for r in rows if r["dataset"] == folder}
    assert set(by_model) == {"lightclip-resnet18", f"local-dir:{root / 'oc'}"}
    assert float(by_model["lightclip-resnet18"]["acc1"]) == pytest.approx(ours[folder]["acc1"])
    assert "4 result(s)" in capsys.readouterr().out


def test_random_open_clip_architecture_by_name(setup, tmp_path):
    import open_clip

    root, datasets = setup
    (tmp_path / "tiny-interop.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(tmp_path / "tiny-interop.json")
    results = evaluate(root, datasets, "tiny", "--model", "openclip:tiny-interop")
    folder = results[f"imagefolder:{root / 'folder'}"]
    assert 0 <= folder["acc1"] <= 1 and folder["num_samples"] == 9
    assert results[f"wds:{root / 'pairs'}"]["num_texts"] == 5


@pytest.mark.parametrize(
    "model, message",
    [
        ("openclip:", "openclip:ARCH"),
        ("openclip:RN50:/no/such/weights.pt", "not a file"),
        ("openclip:no-such-arch", "no-such-arch"),
        ("openclip:tiny-interop:{root}/garbage.safetensors", "cannot load"),
        ("openclip:tiny-interop:{root}/oc/open_clip_model.safetensors", "cannot load"),  # another model's weights
    ],
)
def test_bad_open_clip_model_is_one_line(setup, tmp_path, capsys, model, message):
    import open_clip

    root, datasets = setup
    (root / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (tmp_path / "tiny-interop.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(tmp_path / "tiny-interop.json")
    model = model.format(root=root)
    assert main(["eval", "--model", model, "--datasets", datasets, "--out", str(root / "bad"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_open_clip_model_refuses_checkpoint_options(setup, capsys):
    root, datasets = setup
    args = ["eval", "--model", "openclip:RN50", "--datasets", datasets, "--device", "cpu"]
    assert main([*args, "--image-size", "64"]) == 2
    assert "go with --checkpoint" in capsys.readouterr().err
    assert main([*args, "--checkpoint", str(root / "run")]) == 2
    assert "not both" in capsys.readouterr().err


def test_merge_refuses_bad_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["results", "merge", str(tmp_path / "empty"), "-o", str(tmp_path / "x.csv")]) == 2
    (tmp_path / "nan").mkdir()
    (tmp_path / "nan" / "r.json").write_text('{"dataset": "a", "model": "m", "task": "t", "metrics": {"acc1": NaN}}')
    assert main(["results", "merge", str(tmp_path / "nan"), "-o", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "no result files" in err and "NaN is not JSON" in err and not (tmp_path / "x.csv").exists()
