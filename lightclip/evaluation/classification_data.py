"""Zero-shot classification sets: the paper's 11 by CLIP_benchmark name, and any ImageFolder.

Each named set lives in ``ROOT/<name>/`` and is read with torchvision's class for it (the
directory is torchvision's ``root``, so ``download=True`` fills the same place). Splits, class
names and templates follow CLIP_benchmark: test splits where the set has one, all images for
Caltech-101 (with its background class) and SUN397; the Kaggle folder layout for FER-2013.
Nothing is unpickled: CIFAR's pickled batches are parsed as data (:mod:`.safe_pickle`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets as tvd
from torchvision.datasets.utils import download_and_extract_archive

from lightclip.evaluation.errors import DatasetUnavailable
from lightclip.evaluation.prompts import curated_classnames, fallback_classnames, templates_for
from lightclip.evaluation.safe_pickle import UnsafePickle, load_plain

Transform = Callable
log = logging.getLogger(__name__)


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies in ``root`` (resolved)."""
    return path.resolve().is_relative_to(root)


def checked_file(path: Path, root: Path) -> Path:
    """``path`` when it is a regular file inside ``root`` (links resolved); else ValueError
    (a JSON naming ``../../x`` or a pipe must not read outside the set or block)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"{path} lies outside the set's folder {root}")
    if not resolved.is_file():
        raise ValueError(f"{path} is not a regular file")
    return resolved


def safe_files(folder: Path, root: Path, extensions: tuple[str, ...]) -> tuple[list[Path], int]:
    """Image files under ``folder``: symlinked folders are not entered (a walk that cannot loop),
    symlinks that leave ``root`` and anything but a regular file (pipes, devices) are left out;
    returns (sorted files, how many were left out)."""
    found, refused = [], 0
    for dirpath, _, filenames in os.walk(folder, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if not name.lower().endswith(extensions):
                continue
            if inside(path, root) and path.is_file():  # is_file follows the link: a regular file
                found.append(path)
            else:
                refused += 1
    return sorted(found), refused


class SafeImageFolder(tvd.ImageFolder):
    """torchvision's ImageFolder over :func:`safe_files`: the class folders are the real
    sub-folders of ``root`` (symlinked ones must stay inside it)."""

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        root = Path(directory).resolve()
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and inside(Path(e.path), root))
        if not classes:
            raise FileNotFoundError(f"no class folders in {directory}")
        return classes, {name: i for i, name in enumerate(classes)}

    def make_dataset(
        self,
        directory: str,
        class_to_idx: dict[str, int],
        extensions=None,
        is_valid_file=None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        root, samples, refused = Path(directory).resolve(), [], 0
        for name, index in class_to_idx.items():
            files, left_out = safe_files(Path(directory) / name, root, tuple(tvd.folder.IMG_EXTENSIONS))
            samples += [(str(f), index) for f in files]
            refused += left_out
        if refused:
            log.warning(
                "%s: left out %d entries that are not regular image files inside it "
                "(symlinks leaving the folder, pipes, devices)",
                directory,
                refused,
            )
        return samples


@dataclass
class ClassificationSet:
    """A dataset of ``(image_tensor, class_id)`` with the names and templates to classify it."""

    name: str
    dataset: Dataset
    classnames: list[str]
    templates: list[str]
    size: int | None  # None for a stream of unknown length


@dataclass(frozen=True)
class SetSpec:
    """Where a named set sits under its directory and how to read it."""

    marker: str  # path (relative to ROOT/<name>) that exists once the set is in place
    layout: str
    obtain: str
    build: Callable[[Path, Transform, bool], Dataset]
    downloadable: bool = True


def _image_folder(subdir: str) -> Callable[[Path, Transform, bool], Dataset]:
    def build(directory: Path, transform: Transform, download: bool) -> Dataset:
        return SafeImageFolder(str(directory / subdir), transform=transform)

    return build


class PickleFreeCIFAR(Dataset):
    """CIFAR-10/100 test split read with :func:`load_plain` (the files are pickles; nothing in
    them is executed). ``spec`` is torchvision's class, used for file names and the download
    (whose archive torchvision checks against its MD5)."""

    def __init__(self, root: str, spec: type, transform: Transform, download: bool = False):
        base = Path(root) / spec.base_folder
        if download and not (base / spec.test_list[0][0]).is_file():
            download_and_extract_archive(spec.url, root, filename=spec.filename, md5=spec.tgz_md5)
        try:
            batch = load_plain(base / spec.test_list[0][0])
            self.classes = [str(c) for c in load_plain(base / spec.meta["filename"])[spec.meta["key"]]]
            labels = batch["labels"] if "labels" in batch else batch["fine_labels"]
            self.images = cifar_images(batch["data"], labels)
        except (UnsafePickle, KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{base} does not hold CIFAR's test batch ({err}); unpack the original archive again"
            ) from None
        self.targets = [t if isinstance(t, int) else -1 for t in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        if not 0 <= self.targets[index] < len(self.classes):
            raise ValueError(f"sample {index} has label {str(self.targets[index])[:30]}, not a class id")
        image = Image.fromarray(self.images[index])
        return (self.transform(image) if self.transform else image), self.targets[index]


def cifar_images(data: object, labels: object) -> np.ndarray:
    """(N, 32, 32, 3) uint8 from a batch's ``data``, checked against its ``labels`` (the array
    comes from the file's bytes: its size is bounded by the file's)."""
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"data is {type(data).__name__} {getattr(data, 'shape', '')}, not N x 3072 bytes")
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        raise ValueError(
            f"{data.shape[0]} images but {len(labels) if isinstance(labels, list) else 'no list of'} labels"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _caltech101(directory: Path, transform: Transform, download: bool) -> Dataset:
    if download:
        tvd.Caltech101(str(directory), download=True)
    # CLIP_benchmark keeps BACKGROUND_Google (102 classes, sorted folder order).
    return SafeImageFolder(str(directory / "caltech101" / "101_ObjectCategories"), transform=transform)


def _imagenet(directory: Path, transform: Transform, download: bool) -> Dataset:
    if (directory / "val").is_dir():
        return SafeImageFolder(str(directory / "val"), transform=transform)
    return tvd.ImageNet(str(directory), split="val", transform=transform)


SETS: dict[str, SetSpec] = {
    "imagenet1k": SetSpec(
        marker="val",
        layout="ROOT/imagenet1k/val/<wnid>/*.JPEG   (1000 folders n01440764 ... n15075141)\n"
        "  or ROOT/imagenet1k/ILSVRC2012_devkit_t12.tar.gz + ILSVRC2012_img_val.tar "
        "(torchvision sorts them into val/ on first use)",
        obtain="download ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz from "
        "https://image-net.org (login required) into ROOT/imagenet1k/",
        build=_imagenet,
        downloadable=False,
    ),
    "cifar10": SetSpec(
        marker="cifar-10-batches-py/test_batch",
        layout="ROOT/cifar10/cifar-10-batches-py/{batches.meta,test_batch}   (data_batch_* unused)",
        obtain="--download (torchvision CIFAR10), or unpack cifar-10-python.tar.gz into ROOT/cifar10/",
        build=lambda d, t, dl: PickleFreeCIFAR(str(d), tvd.CIFAR10, t, dl),
    ),
    "cifar100": SetSpec(
        marker="cifar-100-python/test",
        layout="ROOT/cifar100/cifar-100-python/{meta,test}   (train unused)",
        obtain="--download (torchvision CIFAR100), or unpack cifar-100-python.tar.gz into ROOT/cifar100/",
        build=lambda d, t, dl: PickleFreeCIFAR(str(d), tvd.CIFAR100, t, dl),
    ),
    "caltech101": SetSpec(
        marker="caltech101/101_ObjectCategories",
        layout="ROOT/caltech101/caltech101/101_ObjectCategories/<class>/image_*.jpg "
        "(102 folders, BACKGROUND_Google included)",
        obtain="--download (torchvision Caltech101), or unpack caltech-101.zip's "
        "101_ObjectCategories.tar.gz into ROOT/caltech101/caltech101/",
        build=_caltech101,
    ),
    "pets": SetSpec(
        marker="oxford-iiit-pet/annotations/test.txt",
        layout="ROOT/pets/oxford-iiit-pet/{images/*.jpg,annotations/{trainval,test}.txt}",
        obtain="--download (torchvision OxfordIIITPet), or unpack images.tar.gz and "
        "annotations.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/ into ROOT/pets/oxford-iiit-pet/",
        build=lambda d, t, dl: tvd.OxfordIIITPet(
            str(d), split="test", target_types="category", transform=t, download=dl
        ),
    ),
    "flowers": SetSpec(
        marker="flowers-102/imagelabels.mat",
        layout="ROOT/flowers/flowers-102/{jpg/image_*.jpg,imagelabels.mat,setid.mat}",
        obtain="--download (torchvision Flowers102), or get 102flowers.tgz, imagelabels.mat and "
        "setid.mat from https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ into ROOT/flowers/flowers-102/",
        build=lambda d, t, dl: tvd.Flowers102(str(d), split="test", transform=t, download=dl),
    ),
    "food101": SetSpec(
        marker="food-101/meta/test.json",
        layout="ROOT/food101/food-101/{images/<class>/*.jpg,meta/{classes.txt,test.json}}",
        obtain="--download (torchvision Food101, 5 GB), or unpack food-101.tar.gz into ROOT/food101/",
        build=lambda d, t, dl: tvd.Food101(str(d), split="test", transform=t, download=dl),
    ),
    "sun397": SetSpec(
        marker="SUN397/ClassName.txt",
        layout="ROOT/sun397/SUN397/{ClassName.txt,<letter>/<class>/sun_*.jpg}",
        obtain="--download (torchvision SUN397, 37 GB), or unpack SUN397.tar.gz into ROOT/sun397/",
        build=lambda d, t, dl: tvd.SUN397(str(d), transform=t, download=dl),
    ),
    "dtd": SetSpec(
        marker="dtd/dtd/labels/test1.txt",
        layout="ROOT/dtd/dtd/dtd/{images/<class>/*.jpg,labels/test1.txt}",
        obtain="--download (torchvision DTD), or unpack dtd-r1.0.1.tar.gz into ROOT/dtd/dtd/",
        build=lambda d, t, dl: tvd.DTD(str(d), split="test", transform=t, download=dl),
    ),
    "stl10": SetSpec(
        marker="stl10_binary/test_X.bin",
        layout="ROOT/stl10/stl10_binary/{test_X.bin,test_y.bin,class_names.txt}",
        obtain="--download (torchvision STL10, 2.6 GB), or unpack stl10_binary.tar.gz into ROOT/stl10/",
        build=lambda d, t, dl: tvd.STL10(str(d), split="test", transform=t, download=dl),
    ),
    "fer2013": SetSpec(
        marker="test",
        layout="ROOT/fer2013/test/{angry,disgust,fear,happy,neutral,sad,surprise}/*.jpg "
        "(the Kaggle msambare/fer2013 layout)",
        obtain="`kaggle datasets download -d msambare/fer2013` and unzip into ROOT/fer2013/",
        build=_image_folder("test"),
        downloadable=False,
    ),
}

ALIASES = {"imagenet": "imagenet1k", "flowers102": "flowers", "oxford_pets": "pets", "food-101": "food101"}


def _dataset_classnames(name: str, dataset: Dataset) -> list[str]:
    """Names the way CLIP_benchmark takes them from the dataset (``_``/``/`` to spaces for
    Food-101 and SUN397), falling back to the shipped data file."""
    classes = getattr(dataset, "classes", None)
    if classes is None:
        names = fallback_classnames(name)
        if names is None:
            raise ValueError(f"{name}: the dataset carries no class names and none are shipped")
        return names
    if name in ("food101", "sun397"):
        return [c.replace("_", " ").replace("/", " ") for c in classes]
    return list(classes)


def open_named(name: str, root: str | Path, transform: Transform, download: bool = False) -> ClassificationSet:
    """One of the 11 sets by CLIP_benchmark name, from ``ROOT/<name>/``."""
    name = ALIASES.get(name, name)
    spec = SETS[name]
    directory = Path(root) / name
    present = (directory / spec.marker).exists()
    if name == "imagenet1k":
        present = present or (directory / "ILSVRC2012_img_val.tar").exists() or (directory / "meta.bin").exists()
    if not present and not (download and spec.downloadable):
        detail = "not found" if directory.exists() else "directory missing"
        if download and not spec.downloadable:
            detail += " (it cannot be downloaded automatically)"
        raise DatasetUnavailable(name, directory, spec.layout, spec.obtain, detail)
    if download:
        directory.mkdir(parents=True, exist_ok=True)
    dataset = spec.build(directory, transform, download)
    classnames = curated_classnames(name) or _dataset_classnames(name, dataset)
    n_classes = len(getattr(dataset, "classes", classnames))
    if len(classnames) != n_classes:
        raise DatasetUnavailable(
            name,
            directory,
            spec.layout,
            spec.obtain,
            f"found {n_classes} classes where {len(classnames)} were expected",
        )
    return ClassificationSet(name, dataset, classnames, templates_for(name), len(dataset))


IMAGEFOLDER_LAYOUT = (
    "PATH/<class_name>/*.{jpg,png,...}   (one folder per class; '_' in a folder name reads as a space)\n"
    "optional PATH/classnames.txt (the folder names in any order, or one display name per folder in sorted "
    "folder order) and\n"
    "PATH/templates.txt (one template per line, '{c}' marks the class; default: ImageNet's 80)"
)


def _read_lines(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]


def _spoken(name: str) -> str:
    return name.replace("_", " ")


def folder_classnames(folders: list[str], listed: list[str] | None, where: Path) -> list[str]:
    """The class name of each folder (sorted order). Without a file: the folder names. A file
    naming exactly the folders, in any order, is mapped by name; a file of other names (display
    names for folders such as WordNet ids) is read in sorted folder order; a file that names
    some folders but not all, or repeats a name, is refused (labels would be silently wrong)."""
    spoken = [_spoken(f) for f in folders]
    if listed is None:
        return spoken
    names = [_spoken(n) for n in listed]
    if len(set(names)) != len(names):
        raise ValueError(f"{where} repeats a class name; give each of the {len(folders)} folders one line")
    if set(names) == set(spoken):
        return spoken  # the folders' own names, in another order: mapped by name
    overlap = set(names) & set(spoken)
    if overlap or len(names) != len(folders):
        raise ValueError(
            f"{where} has {len(names)} names, {len(overlap)} of them folder names, for {len(folders)} "
            "folders: list exactly the folder names (any order), or one display name per folder "
            "in sorted folder order"
        )
    return names


def open_image_folder(path: str | Path, transform: Transform, name: str | None = None) -> ClassificationSet:
    """Any ``PATH/<class>/<image>`` tree; ``name`` picks shipped templates when it names a set."""
    path = Path(path)
    label = name or f"imagefolder:{path}"
    if not path.is_dir():
        raise DatasetUnavailable(label, path, IMAGEFOLDER_LAYOUT, "arrange the images one folder per class")
    dataset = SafeImageFolder(str(path), transform=transform)
    try:
        classnames = folder_classnames(dataset.classes, _read_lines(path / "classnames.txt"), path / "classnames.txt")
    except ValueError as err:
        raise DatasetUnavailable(label, path, IMAGEFOLDER_LAYOUT, "fix or remove classnames.txt", str(err)) from None
    templates = _read_lines(path / "templates.txt") or templates_for(name or "")
    return ClassificationSet(label, dataset, classnames, templates, len(dataset))
