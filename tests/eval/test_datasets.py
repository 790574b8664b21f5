"""Every on-disk layout the loaders accept, fabricated small, loads with the right labels."""

from __future__ import annotations

import eval_fabricate as fab
import pytest
import torch
from torch.utils.data import DataLoader

from lightclip.evaluation import DatasetUnavailable, open_dataset
from lightclip.evaluation.classification_data import ClassificationSet
from lightclip.evaluation.retrieval_data import RetrievalSet
from lightclip.evaluation.sources import UnknownDataset
from pipeline.base.augment_image import eval_transform

TRANSFORM = eval_transform(16)


def _labels(data: ClassificationSet) -> list[int]:
    return [int(label) for _, label in data.dataset]


def test_cifar10_python_batches(tmp_path):
    fab.cifar10(tmp_path, labels=[3, 0, 9, 3])
    data = open_dataset("cifar10", tmp_path, TRANSFORM)
    assert isinstance(data, ClassificationSet) and data.size == 4
    assert _labels(data) == [3, 0, 9, 3]
    assert data.classnames[3] == "cat" and len(data.classnames) == 10
    assert len(data.templates) == 18 and data.templates[0] == "a photo of a {c}."
    image, _ = data.dataset[0]
    assert image.shape == (3, 16, 16)


def test_image_folder_names_and_labels(tmp_path):
    fab.image_folder(tmp_path / "pics", {"sea_lion": 2, "ant": 3})
    data = open_dataset(f"imagefolder:{tmp_path / 'pics'}", tmp_path, TRANSFORM)
    assert data.classnames == ["ant", "sea lion"]  # sorted folders, '_' read as space
    assert sorted(_labels(data)) == [0, 0, 0, 1, 1] and data.size == 5
    assert len(data.templates) == 80  # ImageNet's, CLIP_benchmark's default


def test_image_folder_relative_to_root_with_own_names(tmp_path):
    fab.image_folder(tmp_path / "pics", {"a": 1, "b": 1})
    (tmp_path / "pics" / "classnames.txt").write_text("alpha\nbeta\n")
    (tmp_path / "pics" / "templates.txt").write_text("{c}!\n")
    data = open_dataset("imagefolder:pics", tmp_path, TRANSFORM)
    assert data.classnames == ["alpha", "beta"] and data.templates == ["{c}!"]


def test_fer2013_kaggle_layout_uses_curated_names(tmp_path):
    folders = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    fab.image_folder(tmp_path / "fer2013" / "test", {f: 1 for f in folders})
    data = open_dataset("fer2013", tmp_path, TRANSFORM)
    assert data.classnames[:3] == ["angry", "disgusted", "fearful"] and data.size == 7
    assert _labels(data) == list(range(7))


def test_karpathy_flickr_layout_keeps_test_split_and_five_captions(tmp_path):
    fab.karpathy(tmp_path / "flickr30k", "dataset_flickr30k.json", ["train", "test", "test", "val"], "flickr30k-images")
    data = open_dataset("flickr30k", tmp_path, TRANSFORM)
    assert isinstance(data, RetrievalSet) and data.size == 2
    image, captions = data.dataset[0]
    assert image.shape == (3, 16, 16)
    assert captions == [f"caption {j} of image 1" for j in range(5)]


def test_karpathy_coco_layout_with_filepath(tmp_path):
    fab.karpathy(tmp_path / "mscoco_captions", "dataset_coco.json", ["test", "restval", "test"], ".", "val2014")
    data = open_dataset("mscoco_captions", tmp_path, TRANSFORM)
    assert data.size == 2 and data.dataset[1][1][0] == "caption 0 of image 2"
    generic = open_dataset(f"karpathy:{tmp_path / 'mscoco_captions' / 'dataset_coco.json'}", tmp_path, TRANSFORM)
    assert generic.size == 2


def test_wds_classification_layout(tmp_path):
    fab.wds_classification(tmp_path / "wds_toy", [[0, 1, 2], [2, 1]], ["red", "green", "blue"])
    data = open_dataset("wds/toy", tmp_path, TRANSFORM)
    assert data.classnames == ["red", "green", "blue"] and data.templates == ["a photo of a {c}.", "{c}"]
    assert _labels(data) == [0, 1, 2, 2, 1]
    same = open_dataset(f"wds:{tmp_path / 'wds_toy'}", tmp_path, TRANSFORM)
    images, labels = next(iter(DataLoader(same.dataset, batch_size=5)))
    assert images.shape == (5, 3, 16, 16) and labels.tolist() == [0, 1, 2, 2, 1]


def test_wds_classification_split_across_workers_sees_each_sample_once(tmp_path):
    fab.wds_classification(tmp_path / "w", [[0, 1], [2, 2], [1]], ["a", "b", "c"])
    data = open_dataset(f"wds:{tmp_path / 'w'}", tmp_path, TRANSFORM)
    loader = DataLoader(data.dataset, batch_size=2, num_workers=2)
    assert sorted(torch.cat([labels for _, labels in loader]).tolist()) == [0, 1, 1, 2, 2]


def test_wds_retrieval_layout(tmp_path):
    fab.wds_retrieval(tmp_path / "pairs", [["one", "uno"], ["two"]])
    data = open_dataset(f"wds:{tmp_path / 'pairs'}", tmp_path, TRANSFORM)
    assert isinstance(data, RetrievalSet)
    assert [captions for _, captions in data.dataset] == [["one", "uno"], ["two"]]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cifar10", "cifar-10-batches-py"),
        ("imagenet1k", "ILSVRC2012_img_val.tar"),
        ("fer2013", "kaggle datasets download"),
        ("flickr30k", "dataset_flickr30k.json"),
        ("mscoco_captions", "val2014"),
        ("wds/cifar10", "nshards.txt"),
    ],
)
def test_missing_dataset_names_layout_and_source(tmp_path, name, expected):
    with pytest.raises(DatasetUnavailable) as err:
        open_dataset(name, tmp_path, TRANSFORM)
    message = str(err.value)
    assert expected in message and "Expected layout" in message and "How to get it" in message
    assert str(tmp_path) in message


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownDataset, match="imagenet1k.*flickr30k"):
        open_dataset("cifar11", tmp_path, TRANSFORM)
