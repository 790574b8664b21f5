"""Build planning and stage functions, without a cluster."""

import pandas as pd
import pytest

from pipeline import build_plan, build_tasks
from pipeline.build import BuildConfig, BuildError
from pipeline.build_tasks import Work
from pipeline.cli import main
from pipeline.filters import FilterConfig
from pipeline.metadata import MetadataConfig


def test_plan_pieces_fixed_size_shards_across_units():
    plan = build_plan.plan_pieces([(0, 0, 4), (0, 1, 0), (1, 0, 5)], 3)
    assert plan == [[(0, 0, 0, 3)], [(0, 0, 3, 4), (1, 0, 0, 2)], [(1, 0, 2, 5)]]
    assert build_plan.plan_pieces([(0, 0, 0)], 3) == []


def test_each_partition_augments_beside_its_first_download():
    # two workers start the first unit and partition 0's captions at once; no worker waits
    # for the downloads of every partition before the (slow to start) caption augmentation
    order = build_plan.stage3_order([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)])
    assert order == [
        ("download", (0, 0)),
        ("augment", 0),
        ("download", (0, 1)),
        ("download", (0, 2)),
        ("download", (1, 0)),
        ("augment", 1),
        ("download", (1, 1)),
    ]
    assert build_plan.stage3_order([]) == []
    assert build_plan.stage3_order([(0, 0), (1, 0)], augment=False) == [("download", (0, 0)), ("download", (1, 0))]


def test_summarise_counts_every_row_once():
    dedup = [{"statuses": {"kept": 3, "unsafe_url": 1}, "reasons": {"local_host": 1}, "kept": 3}]
    units = [{"statuses": {"kept": 1, "decode_failed": 1}, "errors": {}}]
    stats = build_plan.summarise(4, dedup, units)
    # one kept row has no record from img2dataset: it counts as a failed download
    assert stats["statuses"]["kept"] == 1 and stats["statuses"]["download_failed"] == 1
    assert sum(stats["statuses"].values()) == 4
    with pytest.raises(BuildError, match="internal"):
        build_plan.summarise(5, dedup, units)


def test_filter_and_dedup_tasks_are_plain_and_resumable(tmp_path):
    work = Work(tmp_path)
    meta = MetadataConfig(path="m.jsonl")
    raw = [
        pd.DataFrame({"url": ["http://e.com/a", "http://e.com/b"], "caption": ["one a", "two"]}),
        pd.DataFrame({"url": ["http://e.com/a", "http://10.1.2.3/c"], "caption": ["a again", "c"]}),
    ]
    results = [build_tasks.filter_task(r, p, work, meta, FilterConfig()) for p, r in enumerate(raw)]
    assert [rows for rows, _ in results] == [2, 2]
    again = build_tasks.filter_task(None, 1, work, meta, FilterConfig())  # done: input not needed
    assert again[0] == 2 and (again[1] == results[1][1]).all()
    from pipeline.filters import first_occurrence

    keep = first_occurrence([d for _, d in results])
    counts = [build_tasks.dedup_task(p, k, work) for p, k in enumerate(keep)]
    assert counts[0]["statuses"] == {"kept": 2}
    assert counts[1]["statuses"] == {"duplicate_url": 1, "unsafe_url": 1}
    assert counts[1]["reasons"] == {"local_host": 1}
    rows = build_tasks.unit_rows(work, 0, 1, 1)
    assert list(rows["key"]) == ["000000000001"] and list(rows["caption"]) == ["two"]


def test_fingerprint_ignores_cluster_and_speed_settings(tmp_path):
    base = BuildConfig(output=str(tmp_path))
    other = BuildConfig(output="elsewhere")
    other.cluster.n_workers, other.download.thread_count, other.shards.samples_per_shard = 7, 3, 5
    assert build_plan.fingerprint(base) == build_plan.fingerprint(other)
    other.filters.min_words = 3
    assert build_plan.fingerprint(base) != build_plan.fingerprint(other)


def test_build_without_metadata_says_where_to_get_it(tmp_path, capsys):
    code = main(["build", "--recipe", "recipes/data/yfcc15m_v2.yaml", f"output={tmp_path}"])
    assert code == 2
    assert "yfcc15m_clean_open_data.json" in capsys.readouterr().err


def test_recipes_load_strictly(capsys):
    from pipeline.base.configs import ConfigError, from_dict, load_recipe

    for name in ("demo", "yfcc15m_v2"):
        config = from_dict(BuildConfig, load_recipe(f"recipes/data/{name}.yaml"))
        assert config.download.resize_mode == "keep_ratio"
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(BuildConfig, load_recipe("recipes/data/demo.yaml", ["download.speed=3"]))
