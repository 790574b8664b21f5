"""A build's recipe as typed dataclasses, and every check run on it before anything is written
(ranges, names, the metadata file, the allow-list, WordNet): a mistake is one line, exit 2."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pipeline import augment_text, metadata
from pipeline.augment_text import AugmentConfig
from pipeline.base.errors import UserError
from pipeline.base.shards import ShardConfig
from pipeline.bounds import Bound, check_bounds
from pipeline.cluster import ClusterConfig
from pipeline.download import DownloadConfig
from pipeline.filters import FilterConfig
from pipeline.metadata import MetadataConfig
from pipeline.metadata_rows import ROW_DIGITS
from pipeline.urlguard import parse_allow_hosts


@dataclass
class TokenizerConfig:
    """BPE trained on kept captions and variants; ``max_texts`` 0 = all of them."""

    vocab_size: int = 32000  # BPE vocabulary size, special tokens included
    min_frequency: int = 2  # a merge must occur this often
    max_texts: int = 0  # captions and variants to train on (0: all)


@dataclass
class BuildConfig:
    output: str = ""  # folder for the shards, manifest.json, stats.json and tokenizer.json
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    keep_work: bool = True  # keep OUT/_work (downloaded units) after the shards are final
    progress: bool = True  # progress bars


class BuildError(UserError, RuntimeError):
    """A build that cannot start or finish; the message says what to change."""


RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
BOUNDS: tuple[Bound, ...] = (  # every number a build reads
    ("metadata.max_line_bytes", 64, 2**30),
    ("metadata.max_json_depth", 1, 1000),
    ("filters.min_words", 0, None),
    ("filters.max_words", 0, None),
    ("download.image_size", 1, 16384),
    ("download.encode_quality", 0, 100),
    ("download.min_image_size", 0, None),
    ("download.max_image_area", 0, None),
    ("download.max_aspect_ratio", 0, None),
    ("download.timeout", 0.001, 86400),
    ("download.max_bytes", 0, None),
    ("download.retries", 0, 100),
    ("download.thread_count", 1, 1024),
    ("download.samples_per_unit", 1, 10**ROW_DIGITS - 1),
    ("filters.min_latin_share", 0, 1),
    ("augment.min_latin_share", 0, 1),
    ("augment.seed", 0, None),
    ("augment.variants", 0, 64),
    ("augment.aug_p", 0, 1),
    ("shards.samples_per_shard", 1, None),
    *(
        (f"augment.{m}.{key}", low, high)
        for m in ("synonym", "swap", "delete")
        for key, low, high in (("aug_p", 0, 1), ("aug_max", 1, None))
    ),
    ("augment.synonym.top_senses", 1, None),
    ("augment.synonym.min_sense_share", 0, 1),
    ("augment.synonym.min_sense_count", 0, None),
    ("augment.synonym.min_zipf", 0, 10),
    ("augment.synonym.min_length", 0, None),
    ("tokenizer.vocab_size", 260, 2**24),
    ("tokenizer.min_frequency", 0, None),
    ("tokenizer.max_texts", 0, None),
    ("cluster.n_workers", 0, 1024),
    ("cluster.threads_per_worker", 1, 1024),
)


def check_settings(config: BuildConfig) -> None:
    """Every number and name of the recipe in range: one line (exit 2) before anything is written."""
    if not config.output:
        raise BuildError("output is empty: pass output=FOLDER (or OUT= to make data)")
    check_bounds(config, BOUNDS)
    if config.filters.max_words and config.filters.max_words < config.filters.min_words:
        raise BuildError(
            f"filters.max_words={config.filters.max_words} is below filters.min_words="
            f"{config.filters.min_words}; raise it or set 0 for no upper bound"
        )
    if config.download.resize_mode not in RESIZE_MODES:
        raise BuildError(f"download.resize_mode={config.download.resize_mode!r} is not one of {list(RESIZE_MODES)}")
    metadata.block_bytes(config.metadata.blocksize)


def check_config(config: BuildConfig) -> None:
    check_settings(config)
    metadata.check_metadata_path(config.metadata)
    metadata.resolve_format(config.metadata)
    parse_allow_hosts(config.filters.allow_hosts)
    augment_text.check_config(config.augment)
    if config.augment.variants and "synonym" in config.augment.methods:
        from pipeline.wordnet_data import require_wordnet

        require_wordnet()  # fail now, not in every worker


def with_present_columns(config: BuildConfig, log=print) -> BuildConfig:
    """``metadata.keep_columns`` that the file lacks are left out (with a note), so that one
    recipe reads YFCC's rows (url, caption, filename) and a plain url/caption file."""
    present = metadata.present_keep_columns(config.metadata)
    missing = [c for c in config.metadata.keep_columns if c not in present]
    if not missing:
        return config
    log(f"metadata.keep_columns: {missing} not in {config.metadata.path}; left out of key.json")
    return dataclasses.replace(config, metadata=dataclasses.replace(config.metadata, keep_columns=present))
