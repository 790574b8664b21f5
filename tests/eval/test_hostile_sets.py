"""Evaluation sets built to hang, bomb or mislabel: each refused, skipped or mapped, never a hang."""

from __future__ import annotations

import json
import os
import pickle
import tracemalloc

import eval_fabricate as fab
import numpy as np
import pytest
from test_evaluate import ColourModel, ColourTokenizer

from lightclip.evaluation import EvalConfig, evaluate_model, write_results
from lightclip.evaluation.safe_pickle import UnsafePickle, load_plain


def config(*names: str, root, **kwargs) -> EvalConfig:
    return EvalConfig(list(names), str(root), batch_size=4, image_size=16, progress=False, **kwargs)


@pytest.mark.timeout(60)
def test_an_image_folder_with_link_loops_a_pipe_and_an_outside_link_evaluates_only_its_images(tmp_path):
    root = fab.image_folder(tmp_path / "colours", {"red": 2, "green": 1, "blue": 1})
    os.symlink(".", root / "red" / "a")  # a -> . and b -> . : a walk that follows links never ends
    os.symlink(".", root / "red" / "b")
    os.mkfifo(root / "green" / "x.jpg")  # reading a pipe blocks for ever
    fab.solid((30, 30, 220)).save(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "blue" / "leak.png")  # a file outside the set
    os.symlink(tmp_path, root / "elsewhere")  # a class folder outside the set
    out = evaluate_model(ColourModel(), ColourTokenizer(), config("imagefolder:colours", root=tmp_path, strict=True))
    result = out["imagefolder:colours"]
    assert result["num_samples"] == 4 and result["num_classes"] == 3 and result["acc1"] == 1.0


@pytest.mark.timeout(60)
def test_corrupt_images_are_counted_and_skipped_up_to_the_limit(tmp_path):
    root = fab.image_folder(tmp_path / "colours", {"red": 2, "green": 2, "blue": 1})
    (root / "green" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    out = evaluate_model(ColourModel(), ColourTokenizer(), config("imagefolder:colours", root=tmp_path))
    assert out["imagefolder:colours"]["num_samples"] == 5 and out["imagefolder:colours"]["acc1"] == 1.0
    tight = evaluate_model(
        ColourModel(), ColourTokenizer(), config("imagefolder:colours", root=tmp_path, max_bad_samples=0)
    )
    error = tight["imagefolder:colours"]["error"]
    assert (
        "1 unreadable samples" in error and "eval.max_bad_samples=0" in error and "broken" not in error.splitlines()[1:]
    )


class AnyNameTokenizer(ColourTokenizer):
    """Every text is token 0 (CIFAR's class names hold no colour word)."""

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 1), dtype=np.int64)


@pytest.mark.timeout(60)
def test_cifar_labels_that_are_no_class_id_are_bad_samples_not_a_crash(tmp_path):
    fab.cifar10(tmp_path, [0, 1, 2**70, -3, 2])
    out = evaluate_model(ColourModel(), AnyNameTokenizer(), config("cifar10", root=tmp_path))
    assert "error" not in out["cifar10"] and out["cifar10"]["num_samples"] == 3


class Reconstruct:
    """Pickles as numpy's array constructor with ``state`` as the array's data."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), self.state


@pytest.mark.parametrize("raw", [2**30, 2**70], ids=["1GiB", "2**70"])
def test_a_tiny_cifar_batch_cannot_allocate_what_it_does_not_hold(tmp_path, raw):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": Reconstruct((1, (2**30,), np.dtype("u1"), False, raw))}, protocol=2))
    assert path.stat().st_size < 400
    tracemalloc.start()
    with pytest.raises(UnsafePickle, match="not bytes"):
        load_plain(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_huge_dtypes_numbers_and_pipes_stay_inside_the_readers_error_type(tmp_path):
    huge = tmp_path / "huge_dtype"
    huge.write_bytes(pickle.dumps({"data": Reconstruct((1, (1,), np.dtype("V1"), False, b"x"))}))
    with pytest.raises(UnsafePickle):
        load_plain(huge)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(UnsafePickle, match="not a regular file"):
        load_plain(pipe)


@pytest.mark.timeout(30)
def test_an_nshards_count_beyond_the_shards_present_fails_at_once(tmp_path):
    fab.wds_classification(tmp_path / "set", [[0, 1]], ["red", "green"])
    (tmp_path / "set" / "test" / "nshards.txt").write_text("2000000\n")
    out = evaluate_model(ColourModel(), ColourTokenizer(), config("wds:set", root=tmp_path))  # timeout: no shard walk
    assert "nshards.txt says '2000000' but" in out["wds:set"]["error"] and "1 .tar file" in out["wds:set"]["error"]


def test_results_json_is_strict_json(tmp_path):
    json_path, _ = write_results(
        {"a": {"acc1": 1.0, "acc5": float("nan"), "mean_per_class_recall": float("inf")}}, tmp_path
    )
    data = json.loads(json_path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in results.json"))
    assert data["results"]["a"] == {"acc1": 1.0, "acc5": None, "mean_per_class_recall": None}


@pytest.mark.parametrize("order", [["red", "green", "blue"], ["blue", "red", "green"]])
def test_classnames_that_are_the_folder_names_in_any_order_map_by_name(tmp_path, order):
    root = fab.image_folder(tmp_path / "colours", {"red": 2, "green": 1, "blue": 1})
    (root / "classnames.txt").write_text("\n".join(order) + "\n")
    out = evaluate_model(ColourModel(), ColourTokenizer(), config("imagefolder:colours", root=tmp_path, strict=True))
    assert out["imagefolder:colours"]["acc1"] == 1.0  # read positionally, the shuffled file scored 0


@pytest.mark.parametrize("names", [["red", "green", "purple"], ["red", "green"], ["red", "red", "green"]])
def test_classnames_that_name_only_some_folders_are_refused(tmp_path, names):
    root = fab.image_folder(tmp_path / "colours", {"red": 2, "green": 1, "blue": 1})
    (root / "classnames.txt").write_text("\n".join(names) + "\n")
    error = evaluate_model(ColourModel(), ColourTokenizer(), config("imagefolder:colours", root=tmp_path))
    assert "classnames.txt" in error["imagefolder:colours"]["error"].splitlines()[0]


def test_a_model_that_does_not_say_its_size_needs_one(tmp_path):
    fab.image_folder(tmp_path / "colours", {"red": 1, "green": 1, "blue": 1})
    unsized = EvalConfig(["imagefolder:colours"], str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="eval.image_size"):
        evaluate_model(ColourModel(), ColourTokenizer(), unsized)


@pytest.mark.timeout(60)
def test_karpathy_images_outside_the_set_or_not_regular_files_are_skipped(tmp_path):
    directory = fab.karpathy(tmp_path / "flickr30k", "dataset_flickr30k.json", ["test"] * 5, "flickr30k-images")
    annotation = directory / "dataset_flickr30k.json"
    data = json.loads(annotation.read_text())
    fab.solid((200, 0, 0)).save(tmp_path / "secret.jpg")
    os.mkfifo(directory / "flickr30k-images" / "pipe.jpg")
    data["images"][2]["filename"] = "../../secret.jpg"  # outside the set
    data["images"][3]["filename"] = str(tmp_path / "secret.jpg")  # absolute
    data["images"][4]["filename"] = "pipe.jpg"  # would block
    annotation.write_text(json.dumps(data))
    out = evaluate_model(ColourModel(), AnyNameTokenizer(), config("flickr30k", root=tmp_path))["flickr30k"]
    assert out["num_images"] == 2 and out["num_texts"] == 10


@pytest.mark.timeout(30)
def test_a_pipe_named_like_an_annotation_file_is_not_read(tmp_path):
    (tmp_path / "flickr30k").mkdir()
    os.mkfifo(tmp_path / "flickr30k" / "dataset_flickr30k.json")
    out = evaluate_model(ColourModel(), AnyNameTokenizer(), config("flickr30k", root=tmp_path))["flickr30k"]
    assert "no annotation JSON" in out["error"]
