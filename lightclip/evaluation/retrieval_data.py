"""Image-text retrieval sets: Karpathy-split JSON with an image folder, or WebDataset pairs.

Flickr30K reads ``ROOT/flickr30k/dataset_flickr30k.json`` (1,000 test images), MS-COCO reads
``ROOT/mscoco_captions/dataset_coco.json`` (the 5k test split); every test image keeps all of
its captions (five per image) as positives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from lightclip.evaluation.classification_data import checked_file
from lightclip.evaluation.errors import DatasetUnavailable
from lightclip.evaluation.wds_data import WDS_LAYOUT, WDS_OBTAIN, open_wds_retrieval


@dataclass
class RetrievalSet:
    """A dataset of ``(image_tensor, [caption, ...])``."""

    name: str
    dataset: Dataset
    size: int | None


@dataclass(frozen=True)
class KarpathySpec:
    annotation: str
    image_dirs: tuple[str, ...]  # tried in order, relative to ROOT/<name>
    layout: str
    obtain: str


KARPATHY_OBTAIN = (
    "the Karpathy split JSON files (dataset_flickr30k.json, dataset_coco.json) come in "
    "caption_datasets.zip from https://cs.stanford.edu/people/karpathy/deepimagesent/"
)
RETRIEVAL_SETS: dict[str, KarpathySpec] = {
    "flickr30k": KarpathySpec(
        annotation="dataset_flickr30k.json",
        image_dirs=("flickr30k-images", "flickr30k_images", "images", "."),
        layout="ROOT/flickr30k/dataset_flickr30k.json\nROOT/flickr30k/flickr30k-images/<filename>.jpg",
        obtain=KARPATHY_OBTAIN + "; the images from https://shannon.cs.illinois.edu/DenotationGraph/ "
        "(or `kaggle datasets download -d hsankesara/flickr-image-dataset`)",
    ),
    "mscoco_captions": KarpathySpec(
        annotation="dataset_coco.json",
        image_dirs=(".", "images"),
        layout="ROOT/mscoco_captions/dataset_coco.json\n"
        "ROOT/mscoco_captions/val2014/COCO_val2014_*.jpg   (the JSON's filepath/filename)",
        obtain=KARPATHY_OBTAIN + "; the images: http://images.cocodataset.org/zips/val2014.zip "
        "unzipped into ROOT/mscoco_captions/",
    ),
}
RETRIEVAL_ALIASES = {"coco": "mscoco_captions", "mscoco": "mscoco_captions", "flickr": "flickr30k"}
GENERIC_KARPATHY = KarpathySpec(
    annotation="dataset_*.json",
    image_dirs=(".", "images"),
    layout="PATH/dataset_<name>.json  ({'images': [{'filename', 'filepath'?, 'split', "
    "'sentences': [{'raw'}]}]})\nPATH/[images/][<filepath>/]<filename>",
    obtain=KARPATHY_OBTAIN,
)


def read_karpathy(annotation: str | Path, split: str = "test") -> list[tuple[str, list[str]]]:
    """``[(relative image path, [captions])]`` of ``split`` (``test``) in a Karpathy JSON."""
    with open(annotation, encoding="utf-8") as handle:
        data = json.load(handle)
    records = []
    for image in data["images"]:
        if image.get("split") != split:
            continue
        captions = [s["raw"].strip() for s in image.get("sentences", []) if s.get("raw", "").strip()]
        if captions:
            records.append((str(Path(image.get("filepath", "")) / image["filename"]), captions))
    return records


class KarpathyImages(Dataset):
    """``(transform(image), captions)`` for each record, images read from ``image_dir``."""

    def __init__(self, records: list[tuple[str, list[str]]], image_dir: Path, transform: Callable, root: Path):
        self.records = records
        self.image_dir, self.root = image_dir, root  # images are read only from inside root
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        path, captions = self.records[index]
        with Image.open(checked_file(self.image_dir / path, self.root)) as image:
            return self.transform(image.convert("RGB")), list(captions)


def _image_dir(directory: Path, candidates: tuple[str, ...], first: str) -> Path | None:
    for candidate in candidates:
        if (directory / candidate / first).is_file():
            return directory / candidate
    return None


def open_karpathy(
    label: str, directory: Path, spec: KarpathySpec, transform: Callable, split: str = "test"
) -> RetrievalSet:
    """A Karpathy-split set in ``directory`` (its annotation file and image folder)."""
    if directory.is_file():  # a JSON path given directly
        annotations, directory = [directory], directory.parent
    else:
        annotations = sorted(p for p in directory.glob(spec.annotation) if p.is_file()) if directory.is_dir() else []
    if len(annotations) != 1:
        detail = "no annotation JSON" if not annotations else f"several annotation files {annotations}"
        raise DatasetUnavailable(label, directory, spec.layout, spec.obtain, detail)
    records = read_karpathy(annotations[0], split)
    if not records:
        raise DatasetUnavailable(
            label, directory, spec.layout, spec.obtain, f"no '{split}' images in {annotations[0].name}"
        )
    image_dir = _image_dir(directory, spec.image_dirs, records[0][0])
    if image_dir is None:
        raise DatasetUnavailable(label, directory, spec.layout, spec.obtain, f"image {records[0][0]} not found")
    return RetrievalSet(label, KarpathyImages(records, image_dir, transform, directory), len(records))


def open_named_retrieval(name: str, root: str | Path, transform: Callable) -> RetrievalSet:
    """``flickr30k`` or ``mscoco_captions`` from ``ROOT/<name>/``."""
    name = RETRIEVAL_ALIASES.get(name, name)
    return open_karpathy(name, Path(root) / name, RETRIEVAL_SETS[name], transform)


def open_wds_pairs(label: str, directory: Path, transform: Callable) -> RetrievalSet:
    if not directory.is_dir():
        raise DatasetUnavailable(label, directory, WDS_LAYOUT, WDS_OBTAIN, "directory missing")
    dataset, size = open_wds_retrieval(directory, transform)
    return RetrievalSet(label, dataset, size)
