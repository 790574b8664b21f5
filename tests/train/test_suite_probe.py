"""The suite's linear probe: folds, a probe that separates what is separable and nothing else,
and its table against the zero-shot figures."""

from __future__ import annotations

import math

import torch
from PIL import Image
from torchvision import transforms

from lightclip_demo import suite_probe
from lightclip_demo.suite_probe import probe_accuracy, probe_table, set_images, stratified_folds, zeroshot_spec


def test_each_class_is_dealt_evenly_round_the_folds_the_same_way_each_time():
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 3)
    fold = stratified_folds(labels, 3)
    for label in range(3):
        counts = fold[labels == label].bincount(minlength=3)
        assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == int((labels == label).sum())
    assert torch.equal(fold, stratified_folds(labels, 3)) and not torch.equal(fold, stratified_folds(labels, 3, seed=1))


def test_the_probe_reads_separable_classes_and_not_labels_unrelated_to_the_features():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(20)
    centres = 4 * torch.randn(6, 16, generator=generator)
    features = centres[labels] + torch.randn(120, 16, generator=generator)
    assert probe_accuracy(features, labels) >= 0.95
    shuffled = labels[torch.randperm(120, generator=generator)]
    assert probe_accuracy(features, shuffled) < 0.35  # chance 1/6


def test_too_few_images_per_class_use_fewer_folds():
    labels = torch.tensor([0, 0, 1, 1])
    features = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    assert probe_accuracy(features, labels) == 1.0  # two folds: each image held out once


def test_the_table_pairs_seeds_with_the_baseline_and_reads_the_zero_shot_result(tmp_path, monkeypatch):
    folder = tmp_path / "zs"
    for name, colour in (("b", "blue"), ("a", "red")):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), colour).save(folder / name / "1.jpg")
    spec = "imagefolder:zs"  # relative: under the world's root, as the evaluation reads it
    images, labels = set_images(spec, str(tmp_path), transforms.ToTensor())
    assert labels.tolist() == [0, 1] and images[0, 0].mean() > 0.9 > images[1, 0].mean()  # folder order: a (red), b
    assert zeroshot_spec(["karpathy:r", spec]) == spec

    probes = {("CLIP", 0): 0.40, ("CLIP", 1): 0.50, ("Full", 0): 0.46, ("Full", 1): 0.52, ("Full", 2): 0.9}
    runs, zero_shot = {}, {}
    for (variant, seed), probe in probes.items():
        run = tmp_path / variant / f"seed{seed}"
        run.mkdir(parents=True)
        zero_shot[variant, seed] = 100 * (probe - 0.1 if variant == "CLIP" else probe - 0.1 + 0.01)
        runs.setdefault(variant, []).append(run)
    runs["Full"].append(tmp_path / "Full" / "seed3")  # kept no checkpoint
    monkeypatch.setattr(
        suite_probe,
        "run_probe",
        lambda d, f, root, images: probes.get((d.parent.name, int(d.name[4:]))) if (f, root) == (spec, "w0") else None,
    )
    lines = probe_table("w", runs, [spec], "CLIP", zero_shot, "w0")
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in lines
        if line.startswith("| ")
    }
    assert rows["CLIP"] == ["2", "45.0", "35.0", "-", "-"]
    # Δ probe +6 and +2 (seed 2 has no baseline): mean +4, t(0.975, 1) * 2.83 / sqrt 2 = 25.4
    half = 12.706 * math.sqrt(8) / math.sqrt(2)
    assert rows["Full"][:4] == ["2", "49.0", "40.0", f"+4.0 [{4 - half:+.1f}, {4 + half:+.1f}]"]
    assert rows["Full"][4].startswith("+5.0")
    assert probe_table("w", runs, ["karpathy:r"], "CLIP", zero_shot) == []


def test_no_table_without_baseline_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(suite_probe, "run_probe", lambda d, f, root, images: None)
    run = tmp_path / "CLIP" / "seed0"
    run.mkdir(parents=True)
    assert probe_table("w", {"CLIP": [run]}, [f"imagefolder:{tmp_path}"], "CLIP", {}) == []


def test_the_set_is_read_once_per_image_size_across_runs(tmp_path, monkeypatch):
    reads = []
    model = type("Model", (), {"config": type("C", (), {"image_size": 8})(), "transform": None})()
    model.encode_image = lambda pixels: pixels
    monkeypatch.setattr(suite_probe, "list_checkpoints", lambda d: [d])
    monkeypatch.setattr(suite_probe, "load", lambda d: model)
    monkeypatch.setattr(
        suite_probe,
        "set_images",
        lambda spec, root, transform: reads.append(spec) or (torch.eye(4), torch.tensor([0, 0, 1, 1])),
    )
    images: dict = {}
    for run in ("a", "b", "c"):
        assert suite_probe.run_probe(tmp_path / run, "imagefolder:zs", "", images) is not None
    assert reads == ["imagefolder:zs"]
