"""CLIP_benchmark's WebDataset layout for evaluation sets (classification or retrieval).

    DIR/test/nshards.txt        number of shards (optional here: else every test/*.tar)
    DIR/test/0.tar ...          samples: <key>.{webp,png,jpg,jpeg} + <key>.cls (class id)
                                or <key>.txt (captions, one per line) for retrieval
    DIR/classnames.txt          one class name per line (classification)
    DIR/zeroshot_classification_templates.txt   one template per line, '{c}' marks the class
    DIR/dataset_type.txt        "retrieval" for retrieval sets (default: classification)

Only the image and the label (or caption) members are decoded; every other member (``.pyd``,
``.pth``, ``.pickle``...) is left as bytes, never unpickled. Tars are read by
:mod:`pipeline.base.tarsafe`: no compressed streams, no sparse members, members capped in size.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import webdataset as wds
from PIL import Image
from torch.utils.data import IterableDataset

from lightclip.evaluation.classification_data import ClassificationSet
from lightclip.evaluation.errors import DatasetUnavailable
from lightclip.evaluation.prompts import fallback_classnames, templates_for
from pipeline.base.tarsafe import BAD_KEY, TarLimits, read_samples

WDS_LAYOUT = __doc__.split("\n\n")[1]
WDS_OBTAIN = (
    "clone a CLIP_benchmark WebDataset repository (huggingface.co/datasets/djghosh/wds_<name>_test) "
    "or write one with clip_benchmark's `clip_benchmark_export_wds`"
)
IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")


def _lines(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]


def shard_paths(directory: Path, split: str = "test") -> list[str]:
    """The shard files of ``split``, in order."""
    split_dir = directory / split
    count = _lines(split_dir / "nshards.txt")
    if count:
        present = {p.name for p in split_dir.glob("*.tar") if p.is_file()}
        if not count[0].isdigit() or int(count[0]) > len(present):  # checked before a list of that length is built
            detail = f"nshards.txt says {count[0][:20]!r} but {split_dir} holds {len(present)} .tar file(s)"
            raise DatasetUnavailable(str(directory), directory, WDS_LAYOUT, WDS_OBTAIN, detail)
        shards = [split_dir / f"{i}.tar" for i in range(int(count[0]))]
        missing = [str(p) for p in shards if p.name not in present]
        if missing:
            raise DatasetUnavailable(str(directory), directory, WDS_LAYOUT, WDS_OBTAIN, f"missing shards {missing[:3]}")
    else:
        shards = sorted(split_dir.glob("*.tar"), key=lambda p: (len(p.stem), p.stem))
    if not shards:
        raise DatasetUnavailable(str(directory), directory, WDS_LAYOUT, WDS_OBTAIN, f"no shards in {split_dir}")
    return [str(p) for p in shards]


def dataset_type(directory: Path) -> str:
    """ "classification" or "retrieval", from ``dataset_type.txt``."""
    lines = _lines(directory / "dataset_type.txt")
    return lines[0].lower() if lines else "classification"


def decode_image(sample: dict) -> Image.Image:
    """The sample's image member as RGB (PIL's decompression-bomb limit applies)."""
    data = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
    if data is None:
        raise ValueError(
            f"sample {sample.get('__key__')} in {sample.get('__url__')} has no image ({'/'.join(IMAGE_KEYS)})"
        )
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def decode_label(data: bytes) -> int:
    return int(data.decode("utf-8").strip())


def decode_captions(data: bytes) -> list[str]:
    return data.decode("utf-8").splitlines()


class DecodePair:
    """``(transform(image), parse(sample[label_key]))``: the only members that get decoded."""

    def __init__(self, label_key: str, transform: Callable, parse: Callable[[bytes], Any]):
        self.label_key, self.transform, self.parse = label_key, transform, parse

    def __call__(self, sample: dict) -> tuple[Any, Any]:
        if BAD_KEY in sample:
            raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')}: {sample[BAD_KEY]}")
        if self.label_key not in sample:
            raise ValueError(f"sample {sample.get('__key__')} in {sample.get('__url__')} has no .{self.label_key}")
        return self.transform(decode_image(sample)), self.parse(sample[self.label_key])


class SafeTarSamples:
    """Pipeline stage: shard urls -> samples, read within ``limits`` (:mod:`pipeline.base.tarsafe`)."""

    def __init__(self, limits: TarLimits):
        self.limits = limits

    def __call__(self, sources):
        for source in sources:
            yield from read_samples(source["url"], self.limits)


def _pipeline(shards: list[str], label_key: str, transform: Callable, parse: Callable) -> IterableDataset:
    return wds.DataPipeline(
        wds.SimpleShardList(shards),
        wds.split_by_worker,
        SafeTarSamples(TarLimits()),
        wds.map(DecodePair(label_key, transform, parse)),
    )


def _count(directory: Path, split: str) -> int | None:
    lines = _lines(directory / split / "size.txt")  # optional; length otherwise unknown
    return int(lines[0]) if lines else None


def open_wds_classification(
    directory: str | Path, transform: Callable, name: str | None = None, split: str = "test"
) -> ClassificationSet:
    """A classification set in the layout above; ``name`` supplies shipped names/templates
    when the directory lacks its text files."""
    directory = Path(directory)
    label = name or f"wds:{directory}"
    if not directory.is_dir():
        raise DatasetUnavailable(label, directory, WDS_LAYOUT, WDS_OBTAIN, "directory missing")
    classnames = _lines(directory / "classnames.txt") or (fallback_classnames(name) if name else None)
    if not classnames:
        raise DatasetUnavailable(label, directory, WDS_LAYOUT, WDS_OBTAIN, "classnames.txt missing")
    templates = _lines(directory / "zeroshot_classification_templates.txt") or templates_for(name or "")
    dataset = _pipeline(shard_paths(directory, split), "cls", transform, decode_label)
    return ClassificationSet(label, dataset, classnames, templates, _count(directory, split))


def open_wds_retrieval(
    directory: str | Path, transform: Callable, split: str = "test"
) -> tuple[IterableDataset, int | None]:
    """(dataset of ``(image, [captions])``, size or None) for a retrieval set in the layout above."""
    directory = Path(directory)
    dataset = _pipeline(shard_paths(directory, split), "txt", transform, decode_captions)
    return dataset, _count(directory, split)
