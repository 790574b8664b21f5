"""Evaluation never runs code from the data: wds members other than image/label stay bytes,
and CIFAR's pickled batches are parsed as data (a tampered one is refused, not executed)."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import eval_fabricate as fab
import numpy as np
import pytest
import torch

from lightclip.evaluation import open_dataset
from lightclip.evaluation.safe_pickle import UnsafePickle, load_plain
from pipeline.base.augment_image import eval_transform

TRANSFORM = eval_transform(16)


class Exploit:
    """Creates ``path`` when unpickled."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_wds_pyd_and_pth_members_are_never_loaded(tmp_path):
    directory = fab.wds_classification(tmp_path / "wds", [[0, 1]], ["red", "green"])
    marker = tmp_path / "pwned"
    torch_payload = io.BytesIO()
    torch.save({"x": Exploit(marker)}, torch_payload)
    fab.write_tar(
        directory / "test" / "0.tar",
        mode="a",
        members={
            "s9_0000.png": fab.png_bytes(fab.solid(fab.COLOURS[1])),
            "s9_0000.cls": b"1",
            "s9_0000.pyd": pickle.dumps(Exploit(marker)),
            "s9_0000.pth": torch_payload.getvalue(),
            "s9_0000.pickle": pickle.dumps(Exploit(marker)),
        },
    )
    data = open_dataset(f"wds:{directory}", tmp_path, TRANSFORM)
    labels = [int(label) for _, label in data.dataset]
    assert labels == [0, 1, 1] and not marker.exists()


def test_tampered_cifar_is_refused_not_executed(tmp_path):
    base = fab.cifar10(tmp_path, labels=[1, 2])
    marker = tmp_path / "pwned"
    (base / "test_batch").write_bytes(pickle.dumps({"data": Exploit(marker), "labels": [1, 2]}))
    with pytest.raises(ValueError, match="posix.system"):
        open_dataset("cifar10", tmp_path, TRANSFORM)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_pickles_read_in_every_protocol(tmp_path, protocol):
    data = {
        "data": np.arange(3 * 32 * 32 * 2, dtype=np.uint8).reshape(2, -1) % 251,
        "labels": [4, 7],
        b"batch_label": "testing batch 1 of 1",
        "names": ("a", None, True, 1.5),
    }
    path = tmp_path / "p"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = load_plain(path)
    assert out["labels"] == [4, 7] and out["batch_label"] == "testing batch 1 of 1"
    assert out["names"] == ("a", None, True, 1.5)
    assert out["data"].dtype == np.uint8 and np.array_equal(out["data"], data["data"])


@pytest.mark.parametrize("payload", [pickle.dumps(Exploit("/tmp/x")), pickle.dumps(print), b"not a pickle"])
def test_anything_but_data_is_refused(tmp_path, payload):
    path = tmp_path / "p"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickle):
        load_plain(path)
