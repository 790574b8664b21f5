"""Final WebDataset shards: the one module that knows shard names, members and sidecar files.

Layout beside the shards::

    00000.tar ... NNNNN.tar   key.jpg, key.txt (cleaned caption), key.json (url, sizes,
                              original caption), key.variants.json (JSON list of K strings)
    manifest.json             shards with sample counts, sha256 and bytes; totals; pattern
    sizes.json                {shard basename: count} (what open_clip reads)
    stats.json                every input row under exactly one status
    tokenizer.json            BPE tokenizer trained on the kept captions and variants

Each tar is written under a temporary name and renamed when complete. Tars are
byte-reproducible (fixed member order, mtime, owner), so a rebuild gives the same checksums.

:mod:`pipeline.base.verify` reads a finished folder back and checks it against these files.

A shard *spec* (what ``data.shards`` holds) is brace patterns or shard folders joined by
``::``; :func:`expand_spec` and :func:`expected_counts` are what every reader uses.

Shard names are data, never commands: a folder's ``manifest.json`` may only name files inside
that folder (no scheme such as ``pipe:`` or ``http:``, no ``..``, no absolute path, no link
that leads out), and every shard comes back as a local path that no reader takes for a URL
(absolute or ``./``-prefixed). A spec the user writes may hold ``pipe:`` commands only when
the caller allows them (``data.allow_pipe``); other schemes are refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.base.errors import UserError
from pipeline.base.tarsafe import TarLimits, read_samples

SHARD_DIGITS = 5
SHARD_SUFFIX = ".tar"
TMP_SUFFIX = ".tmp"
MANIFEST_FILE = "manifest.json"
SIZES_FILE = "sizes.json"
STATS_FILE = "stats.json"
IMAGE_EXT = "jpg"
TEXT_EXT = "txt"
META_EXT = "json"
VARIANTS_EXT = "variants.json"
MEMBER_EXTS = (IMAGE_EXT, META_EXT, TEXT_EXT, VARIANTS_EXT)
MANIFEST_FORMAT = "lightclip-shards/1"
MANIFEST_SHARDS = "shards"  # manifest key: list of per-shard entries
SHARD_NAME_FIELD = "name"  # per-shard entry: file name
SHARD_SAMPLES_FIELD = "samples"  # per-shard entry: sample count
SPEC_SEPARATOR = "::"
PIPE_PREFIX = "pipe:"
_SHARD_RE = re.compile(r"^(\d+)\.tar$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class ShardSpecError(UserError, ValueError):
    """A shard spec, manifest or sizes file that cannot be read safely: the user's to fix."""


@dataclass
class ShardConfig:
    """``samples_per_shard``: every shard holds exactly this many samples except the last."""

    samples_per_shard: int = 10000


@dataclass
class Sample:
    key: str
    image: bytes
    caption: str
    meta: dict[str, Any]
    variants: list[str]


@dataclass
class ShardInfo:
    name: str
    samples: int
    sha256: str
    bytes: int
    keys: tuple[str, str] | None = field(default=None)  # first and last key


def shard_name(index: int) -> str:
    return f"{index:0{SHARD_DIGITS}d}{SHARD_SUFFIX}"


def shard_pattern(count: int) -> str:
    """Brace pattern for webdataset/open_clip, e.g. ``{00000..00041}.tar``."""
    if count <= 0:
        return ""
    if count == 1:
        return shard_name(0)
    return "{" + f"{0:0{SHARD_DIGITS}d}..{count - 1:0{SHARD_DIGITS}d}" + "}" + SHARD_SUFFIX


def shard_paths(directory: str | Path) -> list[Path]:
    """The finished shards in ``directory``, in index order."""
    found = [p for p in Path(directory).iterdir() if _SHARD_RE.match(p.name)]
    return sorted(found, key=lambda p: int(_SHARD_RE.match(p.name).group(1)))


def plan_shards(total: int, samples_per_shard: int) -> list[range]:
    """Global sample positions of each shard: fixed size, the last one takes the remainder."""
    if samples_per_shard <= 0:
        raise ValueError(f"shards.samples_per_shard must be positive, got {samples_per_shard}")
    return [range(s, min(s + samples_per_shard, total)) for s in range(0, total, samples_per_shard)]


def sample_members(sample: Sample) -> list[tuple[str, bytes]]:
    if "." in sample.key:
        raise ValueError(f"sample key {sample.key!r} contains a dot: webdataset would split it")
    return [
        (f"{sample.key}.{IMAGE_EXT}", sample.image),
        (f"{sample.key}.{META_EXT}", json.dumps(sample.meta, sort_keys=True).encode()),
        (f"{sample.key}.{TEXT_EXT}", sample.caption.encode()),
        (f"{sample.key}.{VARIANTS_EXT}", json.dumps(sample.variants, ensure_ascii=False).encode()),
    ]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shard(directory: str | Path, index: int, samples: Iterable[Sample]) -> ShardInfo:
    """Write shard ``index`` atomically (temporary name, fsync, rename)."""
    final = Path(directory) / shard_name(index)
    tmp = final.with_name(final.name + TMP_SUFFIX)
    count, first, last = 0, None, None
    with open(tmp, "wb") as handle:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in samples:
                for name, data in sample_members(sample):
                    _add(tar, name, data)
                count, first, last = count + 1, first or sample.key, sample.key
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    keys = (first, last) if first else None
    return ShardInfo(final.name, count, sha256_file(final), final.stat().st_size, keys)


def remove_partial(directory: str | Path) -> list[str]:
    """Delete temporary shard files left by an interrupted build; returns their names."""
    removed = []
    for path in Path(directory).glob(f"*{SHARD_SUFFIX}{TMP_SUFFIX}"):
        path.unlink()
        removed.append(path.name)
    return removed


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def write_manifest(directory: str | Path, shards: list[ShardInfo], extra: dict[str, Any]) -> dict:
    """``manifest.json`` and ``sizes.json``; the manifest is written last (it marks completion)."""
    directory = Path(directory)
    manifest = {
        "format": MANIFEST_FORMAT,
        "pattern": shard_pattern(len(shards)),
        "num_shards": len(shards),
        "total_samples": sum(s.samples for s in shards),
        "members": list(MEMBER_EXTS),
        **extra,
        MANIFEST_SHARDS: [{k: v for k, v in asdict(s).items() if k != "keys"} for s in shards],
    }
    _write_json(directory / SIZES_FILE, {s.name: s.samples for s in shards})
    _write_json(directory / MANIFEST_FILE, manifest)
    return manifest


def write_stats(directory: str | Path, stats: dict[str, Any]) -> None:
    _write_json(Path(directory) / STATS_FILE, stats)


def read_json(directory: str | Path, name: str) -> dict:
    path = Path(directory) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {directory} a finished `python -m pipeline build` output?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ShardSpecError(f"{path} is not valid JSON ({err}): rebuild with `python -m pipeline build`") from None
    if not isinstance(data, dict):
        raise ShardSpecError(
            f"{path} holds a {type(data).__name__}, not a JSON object: rebuild with `python -m pipeline build`"
        )
    return data


def iter_samples(path: str | Path, limits: TarLimits | None = None) -> Iterator[dict[str, Any]]:
    """Samples of one tar as {"__key__": key, ext: bytes}, grouped like webdataset does, read
    within ``limits`` (:mod:`pipeline.base.tarsafe`; a refused member is named under ``__bad__``)."""
    return read_samples(str(path), limits or TarLimits())


# ------------------------------------------------------------------ reading specs and counts


def split_spec(spec: str) -> list[str]:
    """The sources of a shard spec: ``a/{0..9}.tar::b/`` -> [``a/{0..9}.tar``, ``b/``]."""
    return [s.strip() for s in spec.split(SPEC_SEPARATOR) if s.strip()]


def spec_folder(spec: str) -> Path:
    """The folder of the spec's first source (where ``tokenizer.json`` and the sidecars are)."""
    sources = split_spec(spec)
    first = Path(sources[0]) if sources else Path(".")
    return first if first.is_dir() else first.parent


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShardSpecError(f"{where}: sample count {value!r} is not a non-negative integer")
    return value


def manifest_entries(directory: str | Path) -> list[dict[str, Any]]:
    """The per-shard entries of ``manifest.json`` (``name``, ``samples``, ``sha256``, ``bytes``),
    their types checked: a list of objects with a string name and a non-negative count."""
    where = Path(directory) / MANIFEST_FILE
    entries = read_json(directory, MANIFEST_FILE).get(MANIFEST_SHARDS)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ShardSpecError(
            f"{where}: {MANIFEST_SHARDS!r} must be a list of {{{SHARD_NAME_FIELD!r}: ..., "
            f"{SHARD_SAMPLES_FIELD!r}: ...}} objects: rebuild with `python -m pipeline build`"
        )
    for entry in entries:
        if not isinstance(entry.get(SHARD_NAME_FIELD), str):
            raise ShardSpecError(f"{where}: shard name {entry.get(SHARD_NAME_FIELD)!r} is not a string")
        _count(entry.get(SHARD_SAMPLES_FIELD), f"{where}: {entry[SHARD_NAME_FIELD]}")
    return entries


def local_url(path: str | Path) -> str:
    """``path`` as a string no reader takes for a URL or command: absolute, or ``./``-prefixed."""
    text = str(path)
    return text if os.path.isabs(text) else os.path.join(".", text)


def member_path(directory: str | Path, name: str, source: str) -> str:
    """The shard file ``name`` listed in ``source`` (a file of ``directory``), as a local path;
    refuses a scheme, an absolute path, ``..`` or anything that resolves outside ``directory``."""
    directory = Path(directory)
    parts = Path(name).parts
    if not name or _SCHEME_RE.match(name) or Path(name).is_absolute() or ".." in parts or "\\" in name:
        raise ShardSpecError(
            f"{source} names shard {name!r}: shard names must be plain file names "
            "inside the shard folder (no scheme, absolute path or '..')"
        )
    path = directory / name
    root = directory.resolve()
    if not path.resolve().is_relative_to(root):
        raise ShardSpecError(f"{source} names shard {name!r}, which resolves outside {directory}")
    return local_url(path)


def folder_shards(directory: str | Path) -> list[str]:
    """The shards of a build folder: as listed by its manifest, else every ``*.tar``."""
    directory = Path(directory)
    manifest = directory / MANIFEST_FILE
    if manifest.is_file():
        return [member_path(directory, e[SHARD_NAME_FIELD], str(manifest)) for e in manifest_entries(directory)]
    return sorted(local_url(p) for p in directory.glob(f"*{SHARD_SUFFIX}"))


def source_urls(source: str, allow_pipe: bool = False) -> list[str]:
    """The shards of one spec source the user wrote: a folder, a ``pipe:`` command (only when
    ``allow_pipe``), or a brace pattern of local files."""
    from braceexpand import braceexpand

    if Path(source).is_dir():
        return folder_shards(source)
    if source.startswith(PIPE_PREFIX) and allow_pipe:
        return list(braceexpand(source))
    if _SCHEME_RE.match(source):
        scheme = source.split(":", 1)[0]
        raise ShardSpecError(
            f"shard spec {source!r}: {scheme}: sources are not read; give local shard paths or a shard "
            "folder (download remote shards first), or for a shell command of your own set data.allow_pipe=true"
        )
    return [local_url(url) for url in braceexpand(source)]


def expand_spec(spec: str, allow_pipe: bool = False) -> list[str]:
    """Shard paths of ``spec``: brace patterns or folders joined by ``::``, in order (local
    paths, see the module docstring; ``pipe:`` commands kept only with ``allow_pipe``)."""
    urls: list[str] = []
    for source in split_spec(spec):
        urls += source_urls(source, allow_pipe)
    if not urls:
        raise ShardSpecError(
            f"no shards in {spec!r}: give a brace pattern like 'data/{{00000..00009}}.tar' or a shard folder"
        )
    return urls


def folder_counts(directory: str | Path) -> dict[str, int]:
    """{shard file name: sample count} from ``sizes.json``, else ``manifest.json``; {} if neither."""
    directory = Path(directory)
    if (directory / SIZES_FILE).is_file():
        where = directory / SIZES_FILE
        return {str(k): _count(v, f"{where}: {k}") for k, v in read_json(directory, SIZES_FILE).items()}
    if (directory / MANIFEST_FILE).is_file():
        return {e[SHARD_NAME_FIELD]: e[SHARD_SAMPLES_FIELD] for e in manifest_entries(directory)}
    return {}


def expected_counts(urls: Iterable[str]) -> dict[str, int]:
    """{url: sample count} for every url whose folder records one (others are left out)."""
    by_folder: dict[Path, Mapping[str, int]] = {}
    found = {}
    for url in urls:
        folder = Path(url).parent
        if folder not in by_folder:
            by_folder[folder] = folder_counts(folder) if folder.is_dir() else {}
        if Path(url).name in by_folder[folder]:
            found[url] = by_folder[folder][Path(url).name]
    return found
