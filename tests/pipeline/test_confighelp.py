"""settings_help: every key of a dataclass config with its type, default and meaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.base.confighelp import iter_settings, settings_help


@dataclass
class Inner:
    """An inner section. ``rate`` is the share of words changed."""

    rate: float = 0.3
    mode: Literal["a", "b"] = "a"  # how words are picked


@dataclass
class Outer:
    """A top-level config."""

    #: where the output goes
    output: str = ""
    size: int = field(default=256, metadata={"help": "shorter side in pixels"})
    names: list[str] = field(default_factory=lambda: ["x", "y"])  # noqa: RUF009 - names to keep
    token: str | None = None  # noqa: E501
    inner: Inner = field(default_factory=Inner)


def test_every_leaf_key_with_type_default_and_meaning():
    settings = {s.key: s for s in iter_settings(Outer)}
    assert list(settings) == ["output", "size", "names", "token", "inner.rate", "inner.mode"]
    assert settings["output"] == ("output", "str", '""', "where the output goes")
    assert settings["size"].meaning == "shorter side in pixels"
    assert settings["size"].default == "256"
    assert settings["names"].type == "list[str]" and settings["names"].default == '["x", "y"]'
    assert settings["token"].type == "str | None" and settings["token"].default == "null"
    assert settings["token"].meaning == ""  # tool directives are not meanings
    assert settings["inner.rate"].meaning == "rate is the share of words changed"
    assert settings["inner.mode"].type == "one of a|b"
    assert settings["inner.mode"].meaning == "how words are picked"


def test_settings_help_is_a_table_of_all_keys():
    text = settings_help(Outer)
    lines = text.splitlines()
    assert len(lines) == 6
    assert lines[1].split() == ["size", "int", "=", "256", "shorter", "side", "in", "pixels"]
    assert all(line.startswith("  ") and len(line) <= 100 for line in lines)


def test_build_config_lists_every_section():
    from pipeline.build import BuildConfig

    keys = [s.key for s in iter_settings(BuildConfig)]
    for key in (
        "output",
        "metadata.path",
        "download.thread_count",
        "cluster.n_workers",
        "filters.allow_hosts",
        "shards.samples_per_shard",
        "augment.synonym.mode",
    ):
        assert key in keys
    assert len(keys) == len(set(keys))
