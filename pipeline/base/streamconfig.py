"""Loader and image-augmentation configs (no torch import): read by ``lightclip train --help``
and the start-up checks; :mod:`pipeline.stream` and :mod:`pipeline.base.augment_image` re-export them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.base.tarsafe import TarLimits


@dataclass
class MoCoConfig:
    """MoCo-v2 augmentation parameters.

    ``split``: True (default) = loaders run ``split_worker_transform`` and the trainer calls
    ``apply_photometric`` on the device; False = the per-sample ``moco_transform`` reference.
    """

    size: int = 224
    scale: tuple[float, float] = (0.2, 1.0)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    flip_p: float = 0.5
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    split: bool = True


@dataclass
class StreamConfig:
    """Where the shards are and how to read them.

    ``shards``: brace patterns joined by ``::`` (``/d/{00000..00099}.tar::/e/{0..9}.tar``) or a
    shard folder (its ``manifest.json`` lists the shards). ``samples_per_epoch`` 0 means the sum
    of ``sizes.json`` / ``manifest.json`` counts beside the shards. ``variant_prob``: chance that
    a sample's caption is one of its ``variants.json`` entries instead of the original.
    ``image.size`` is the output side; ``augment: false`` uses the eval transform instead.
    ``max_skipped_fraction``: the share of a reader's epoch that may be lost (corrupt samples,
    and samples missing from shards shorter than their recorded count) before the loader stops
    with :class:`DataLossError`; 1 or more means no limit. ``tar``: the largest member read and
    whether compressed shards are read (:mod:`pipeline.base.tarsafe`). ``allow_pipe``: let
    ``shards`` hold ``pipe:`` commands (run in a shell, like open_clip's ``pipe:aws s3 cp``);
    a shard folder's ``manifest.json`` can never name one. ``pin_memory``: batches in
    page-locked memory when CUDA is available, so the copy to the GPU runs beside the step.
    """

    shards: str = ""
    workers: int = 4
    resampled: bool = False
    shard_shuffle: bool = True
    shuffle_buffer: int = 5000
    shuffle_initial: int = 1000
    samples_per_epoch: int = 0
    variant_prob: float = 0.5
    max_pixels: int = 64_000_000
    max_skipped_fraction: float = 0.01
    augment: bool = True
    image: MoCoConfig = field(default_factory=MoCoConfig)
    prefetch: int = 2
    tar: TarLimits = field(default_factory=TarLimits)
    allow_pipe: bool = False
    pin_memory: bool = True
