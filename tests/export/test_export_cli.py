"""The export and classify verbs end to end, and the errors a user meets with bad files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from export_fixtures import tiny_config, write_images, write_tokenizer

from lightclip.checkpoint import checkpoint_path, run_tokenizer, save_checkpoint
from lightclip.cli import main
from lightclip.export import CONFIG_FILE, WEIGHTS_FILE
from lightclip.inference import LoadError, load
from lightclip.task import LightCLIP
from pipeline.base.configs import to_dict
from pipeline.base.tokenizer import TOKENIZER_FILE

LABELS = "a cat,a dog,a red car,a boat"


def write_run(run_dir, encoder):
    """A run directory as training leaves it: tokenizer.json and checkpoints/step_*.pt."""
    config = tiny_config(encoder)
    model = LightCLIP(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_tokenizer(run_tokenizer(run_dir))
    state = {"config": {"model": to_dict(config)}, "model": model.state_dict(), "step": 1}
    save_checkpoint(state, checkpoint_path(run_dir, 1))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`lightclip export` of a resnet18 and a mobilenet_v2 run (TorchScript exporter: fast)."""
    root = tmp_path_factory.mktemp("cli")
    dirs = {}
    for encoder in ("resnet18", "mobilenet_v2"):
        torch.manual_seed(0)
        write_run(root / f"run_{encoder}", encoder)
        out = root / f"export_{encoder}"
        code = main(
            ["export", "--checkpoint", str(root / f"run_{encoder}"), "--out", str(out), "--exporter", "torchscript"]
        )
        assert code == 0
        dirs[encoder] = out
    return dirs


def classify_json(capsys, model_dir, images, backend, *extra):
    capsys.readouterr()
    code = main(
        [
            "classify",
            "--model",
            str(model_dir),
            *map(str, images),
            "--labels",
            LABELS,
            "--backend",
            backend,
            "--json",
            *extra,
        ]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def ranking(scores):
    return [label for label, _ in sorted(scores.items(), key=lambda item: -item[1])]


def test_export_from_a_run_directory_keeps_the_clip_weights(exported, tmp_path):
    torch.manual_seed(0)
    model = write_run(tmp_path / "run", "resnet18")  # same seed: the run behind exported["resnet18"]
    loaded = load(exported["resnet18"])
    for key, value in model.clip.state_dict().items():
        assert torch.equal(loaded._towers.model.state_dict()[key], value), key


def test_classify_ranks_the_same_through_both_backends(exported, tmp_path, capsys):
    images = write_images(tmp_path / "images", count=3)
    for model_dir in exported.values():
        eager = classify_json(capsys, model_dir, images, "torch")
        onnx = classify_json(capsys, model_dir, images, "onnx")
        assert list(eager) == [str(p) for p in images]
        for path in eager:
            assert sum(eager[path].values()) == pytest.approx(1.0, abs=1e-5)
            assert ranking(eager[path]) == ranking(onnx[path])
            for label, p in eager[path].items():
                assert onnx[path][label] == pytest.approx(p, abs=1e-4)


def test_classify_prompt_changes_the_text(exported, tmp_path, capsys):
    images = write_images(tmp_path / "images", count=1)
    prompted = classify_json(capsys, exported["resnet18"], images, "torch")
    raw = classify_json(capsys, exported["resnet18"], images, "torch", "--prompt", "{label}")
    model = load(exported["resnet18"])
    expected = model.classify(images, LABELS.split(","), prompt="{label}")[0].tolist()
    assert list(raw[str(images[0])].values()) == pytest.approx(expected, abs=1e-6)
    assert prompted != raw


def test_classify_prints_a_table(exported, tmp_path, capsys):
    images = write_images(tmp_path / "images", count=1)
    assert main(["classify", "--model", str(exported["resnet18"]), str(images[0]), "--labels", "a cat, a dog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(images[0]) and len(lines) == 3
    assert {line.split(None, 1)[1] for line in lines[1:]} == {"a cat", "a dog"}


def test_truncated_safetensors_is_rejected_with_its_name(exported, tmp_path, capsys):
    broken = shutil.copytree(exported["resnet18"], tmp_path / "broken")
    weights = broken / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(LoadError, match=rf"{weights}: damaged or unreadable safetensors file"):
        load(broken)
    images = write_images(tmp_path / "images", count=1)
    assert main(["classify", "--model", str(broken), str(images[0]), "--labels", "a cat,a dog"]) == 2
    assert "damaged or unreadable safetensors file" in capsys.readouterr().err


def test_weights_of_another_encoder_are_rejected(exported, tmp_path):
    mixed = shutil.copytree(exported["resnet18"], tmp_path / "mixed")
    shutil.copy(exported["mobilenet_v2"] / WEIGHTS_FILE, mixed / WEIGHTS_FILE)
    with pytest.raises(LoadError, match=r"model.safetensors does not fit a CLIP built from its config"):
        load(mixed)


def test_damaged_onnx_file_is_rejected(exported, tmp_path):
    broken = shutil.copytree(exported["resnet18"], tmp_path / "broken")
    (broken / "text_encoder.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(LoadError, match=r"text_encoder.onnx: onnxruntime cannot load it"):
        load(broken, backend="onnx")


def test_export_of_a_damaged_checkpoint_fails_cleanly(tmp_path, capsys):
    write_run(tmp_path / "run", "resnet18")
    step = checkpoint_path(tmp_path / "run", 1)
    step.write_bytes(step.read_bytes()[:1000])
    code = main(["export", "--checkpoint", str(step), "--out", str(tmp_path / "out")])
    assert code == 2
    assert str(step) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_load_of_a_folder_that_is_not_an_export(tmp_path):
    with pytest.raises(LoadError, match="config.json not found"):
        load(tmp_path)


def test_export_reads_a_recipe_and_overrides_and_refuses_typos(tmp_path, capsys):
    """Recipe < flags < key=value overrides; an unknown key fails before anything is written."""
    write_run(tmp_path / "run", "resnet18")
    recipe = tmp_path / "export.yaml"
    recipe.write_text(f"checkpoint: {tmp_path / 'run'}\nexport: {{onnx: true, opset: 7}}\n")
    typo = main(["export", "--recipe", str(recipe), "--out", str(tmp_path / "bad"), "export.opsett=18"])
    assert typo == 2 and "opsett" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    code = main(["export", "--recipe", str(recipe), "--out", str(tmp_path / "out"), "--no-onnx", "export.opset=18"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE])
    assert main(["export", "--checkpoint", str(tmp_path / "run")]) == 2
    assert "--out" in capsys.readouterr().err


def test_classify_takes_overrides_beside_the_images(exported, tmp_path, capsys):
    images = write_images(tmp_path / "images", count=2)
    flags = classify_json(capsys, exported["resnet18"], images, "torch")
    capsys.readouterr()
    code = main(
        ["classify", str(images[0]), f"model={exported['resnet18']}", str(images[1]), f"labels=[{LABELS}]", "json=true"]
    )
    assert code == 0 and json.loads(capsys.readouterr().out) == flags
    assert main(["classify", "--model", str(exported["resnet18"]), "--labels", "a,b", str(images[0]), "labls=x"]) == 2
    assert "labls" in capsys.readouterr().err


def test_classify_reads_a_run_directory_or_checkpoint_like_its_export(exported, tmp_path, capsys):
    images = write_images(tmp_path / "images", count=2)
    run_dir = exported["resnet18"].parent / "run_resnet18"
    from_export = classify_json(capsys, exported["resnet18"], images, "torch")
    for source in (run_dir, checkpoint_path(run_dir, 1)):
        assert classify_json(capsys, source, images, "torch") == from_export
    assert main(["classify", "--model", str(run_dir), str(images[0]), "--labels", "a,b", "--backend", "onnx"]) == 2
    assert "export directory" in capsys.readouterr().err
