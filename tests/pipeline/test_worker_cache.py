"""Worker start-up paid once per worker: img2dataset imported and augmenters built at join."""

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.augment_text import AugmentConfig, augmenters
from pipeline.worker_cache import PLUGIN_NAME, needs_augmenters, register

os.environ.setdefault("NLTK_DATA", str(Path(__file__).resolve().parents[2] / ".nltk_data"))
FAST = AugmentConfig(variants=2, methods=("swap", "delete"))


def test_augmenters_only_where_every_worker_gets_augmentation():
    assert needs_augmenters(FAST, partitions=4, workers=2)
    assert not needs_augmenters(FAST, partitions=1, workers=2)
    assert not needs_augmenters(AugmentConfig(variants=0), partitions=8, workers=2)


def test_concurrent_requests_build_the_augmenters_once():
    config = AugmentConfig(variants=1, methods=("delete",), aug_p=0.17)
    tables = []
    threads = [threading.Thread(target=lambda: tables.append(augmenters(config))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(t) for t in tables}) == 1 and len({id(t["delete"]) for t in tables}) == 1


def _state() -> dict:
    from pipeline import augment_text

    names = [t.name for t in threading.enumerate()]
    return {"img2dataset": "img2dataset.downloader" in sys.modules, "preloading": PLUGIN_NAME in names,
            "augmenter_sets": augment_text._augmenters.cache_info().currsize}


@pytest.mark.slow
def test_plugin_preloads_on_each_worker_process():
    from distributed import Client, LocalCluster

    env = {"NO_ALBUMENTATIONS_UPDATE": "1", "NLTK_DATA": os.environ["NLTK_DATA"]}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env=env) as cluster, Client(cluster) as client:
        before = client.run(_state)
        assert not any(s["img2dataset"] for s in before.values())
        register(client, FAST, partitions=2)
        deadline = time.monotonic() + 240
        while any(s["preloading"] for s in client.run(_state).values()):
            assert time.monotonic() < deadline, "preloading never finished"
            time.sleep(0.5)
        after = client.run(_state)
    assert len(after) == 2
    assert all(s["img2dataset"] and s["augmenter_sets"] == 1 for s in after.values()), after


def _finishes_only_after_release(work) -> None:
    """``work`` started while STARTUP is held (as by another thread paying the start-up) waits for its release."""
    from pipeline.startup import STARTUP

    done = threading.Event()
    with STARTUP:
        thread = threading.Thread(target=lambda: (work(), done.set()), daemon=True)
        thread.start()
        assert not done.wait(0.5), "ran while the start-up lock was held"
    assert done.wait(120)


def test_a_task_waits_for_the_preload_before_importing_img2dataset():
    from pipeline.startup import img2dataset_downloader

    _finishes_only_after_release(img2dataset_downloader)


def test_a_task_waits_for_the_preload_before_building_augmenters():
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
