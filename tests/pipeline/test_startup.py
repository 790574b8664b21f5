"""A worker process pays its heavy start-up once, one thread at a time (pipeline.startup)."""

import os
import threading
from pathlib import Path

import pytest

from pipeline.augment_text import AugmentConfig, augmenters

os.environ.setdefault("NLTK_DATA", str(Path(__file__).resolve().parents[2] / ".nltk_data"))


def test_concurrent_requests_build_the_augmenters_once():
    config = AugmentConfig(variants=1, methods=("delete",), aug_p=0.17)
    tables = []
    threads = [threading.Thread(target=lambda: tables.append(augmenters(config))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(t) for t in tables}) == 1 and len({id(t["delete"]) for t in tables}) == 1


def _finishes_only_after_release(work) -> None:
    """``work`` started while another thread holds STARTUP waits for its release."""
    from pipeline.startup import STARTUP

    done = threading.Event()
    with STARTUP:
        thread = threading.Thread(target=lambda: (work(), done.set()), daemon=True)
        thread.start()
        assert not done.wait(0.5), "ran while the start-up lock was held"
    assert done.wait(120)


def test_a_task_waits_for_another_threads_start_up_before_importing_img2dataset():
    from pipeline.startup import img2dataset_downloader

    _finishes_only_after_release(img2dataset_downloader)


def test_a_task_waits_for_another_threads_start_up_before_building_augmenters():
    config = AugmentConfig(variants=1, methods=("swap",), aug_p=0.13)
    _finishes_only_after_release(lambda: augmenters(config))


def test_downloads_import_img2dataset_through_the_start_up_lock(monkeypatch, tmp_path):
    import pandas as pd

    import pipeline.download as download

    class Imported(Exception):
        pass

    def refuse():
        raise Imported

    monkeypatch.setattr(download, "img2dataset_downloader", refuse)
    rows = pd.DataFrame({"key": ["0"], "url": ["http://127.0.0.1:9/a.jpg"], "caption": ["a"]})
    with pytest.raises(Imported):
        download.download_unit(rows, tmp_path / "unit", download.DownloadConfig())
