"""Tiny on-disk copies of every layout the evaluation loaders accept."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 40)]


def solid(colour: tuple[int, int, int], size: int = 8) -> Image.Image:
    return Image.new("RGB", (size, size), colour)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def cifar10(root: Path, labels: list[int]) -> Path:
    """ROOT/cifar10/cifar-10-batches-py/{test_batch,batches.meta} (CIFAR python pickles)."""
    base = root / "cifar10" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    data = np.stack([np.full((3, 32, 32), 10 * i, dtype=np.uint8).reshape(-1) for i in range(len(labels))])
    with open(base / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": labels}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    return base


def image_folder(path: Path, per_class: dict[str, int], size: int = 8) -> Path:
    """PATH/<class>/<i>.png, class k in colour k."""
    for k, (name, count) in enumerate(per_class.items()):
        (path / name).mkdir(parents=True)
        for i in range(count):
            solid(COLOURS[k % len(COLOURS)], size).save(path / name / f"{i}.png")
    return path


def karpathy(directory: Path, json_name: str, splits: list[str], image_subdir: str, filepath: str = "") -> Path:
    """A Karpathy-split JSON (5 captions per image) with its images under ``image_subdir``."""
    images = []
    for i, split in enumerate(splits):
        filename = f"img{i}.jpg"
        target = directory / image_subdir / filepath / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        solid(COLOURS[i % len(COLOURS)]).save(target)
        sentences = [{"raw": f"caption {j} of image {i}", "tokens": []} for j in range(5)]
        entry = {"filename": filename, "split": split, "sentences": sentences, "imgid": i}
        if filepath:
            entry["filepath"] = filepath
        images.append(entry)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / json_name).write_text(json.dumps({"images": images, "dataset": "x"}))
    return directory


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> None:
    """Write (``mode="w"``) or append (``"a"``) ``members`` {name: payload} to the tar ``path``."""
    with tarfile.open(path, mode) as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def wds_classification(directory: Path, labels_per_shard: list[list[int]], classnames: list[str]) -> Path:
    """CLIP_benchmark layout: test/{nshards.txt,0.tar,...}, classnames.txt, templates."""
    (directory / "test").mkdir(parents=True)
    for shard, labels in enumerate(labels_per_shard):
        members = {}
        for i, label in enumerate(labels):
            key = f"s{shard}_{i:04d}"
            members[f"{key}.png"] = png_bytes(solid(COLOURS[label % len(COLOURS)]))
            members[f"{key}.cls"] = str(label).encode()
        write_tar(directory / "test" / f"{shard}.tar", members)
    (directory / "test" / "nshards.txt").write_text(str(len(labels_per_shard)))
    (directory / "classnames.txt").write_text("\n".join(classnames) + "\n")
    (directory / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n{c}\n")
    return directory


def wds_retrieval(directory: Path, captions: list[list[str]]) -> Path:
    """CLIP_benchmark retrieval layout: dataset_type.txt = retrieval, <key>.txt = captions."""
    (directory / "test").mkdir(parents=True)
    members = {}
    for i, lines in enumerate(captions):
        members[f"k{i:04d}.jpg"] = png_bytes(solid(COLOURS[i % len(COLOURS)]))
        members[f"k{i:04d}.txt"] = "\n".join(lines).encode()
    write_tar(directory / "test" / "0.tar", members)
    (directory / "dataset_type.txt").write_text("retrieval\n")
    return directory
