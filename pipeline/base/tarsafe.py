"""Bounded reading of tar shards from outside: the one reader behind the loader, `verify` and
WebDataset evaluation sets.

A shard is data, so reading it must not cost more than its members are allowed to hold:

- compressed streams (gzip, bzip2, xz, zstd) are refused unless ``compressed`` is set; a
  ``.tar`` name says nothing about the bytes (``tarfile``'s ``r|*`` would decompress them);
- sparse members (a few KB on disk that expand to GiB when read) are never read;
- a member larger than ``max_member_mb`` is never read; at most that many bytes reach memory.

A refused member is skipped, not fatal: its sample comes out with a ``__bad__`` reason, and
the caller counts the sample as skipped. Members are grouped into samples by key (the name up
to the first dot of its last path part) the way webdataset does.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from pipeline.base.errors import UserError

BAD_KEY = "__bad__"  # sample field: why a member of the sample was not read
MB = 1 << 20
COMPRESSED_MAGIC = {  # leading bytes -> compression name
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


@dataclass(frozen=True)
class TarLimits:
    """What a shard may hold. ``max_member_mb``: the largest member read (image, caption...);
    ``compressed``: read gzip/bzip2/xz-compressed tars (off: such a shard is refused)."""

    max_member_mb: float = 64.0
    compressed: bool = False

    @property
    def max_member_bytes(self) -> int:
        return int(self.max_member_mb * MB)


class TarRefused(UserError, ValueError):
    """A whole shard is refused (a compressed stream where plain tar is expected)."""


class Member(NamedTuple):
    """One regular member: its bytes, or None with ``problem`` saying why it was not read."""

    name: str
    data: bytes | None
    problem: str | None


def check_limits(limits: TarLimits, where: str = "data.tar") -> None:
    if not limits.max_member_mb > 0:
        raise ValueError(f"{where}.max_member_mb must be > 0, got {limits.max_member_mb}")


def compression_of(head: bytes) -> str | None:
    """The compression whose magic bytes start ``head``, or None for a plain stream."""
    return next((name for magic, name in COMPRESSED_MAGIC.items() if head.startswith(magic)), None)


def open_stream(stream: IO[bytes], source: str, limits: TarLimits) -> tarfile.TarFile:
    """A streaming ``TarFile`` over ``stream``; a compressed one only when ``limits`` allow it."""
    buffered = stream if hasattr(stream, "peek") else _Peekable(stream)
    compression = compression_of(buffered.peek(8)[:8])
    if compression and not limits.compressed:
        raise TarRefused(
            f"{source} is a {compression}-compressed stream, not a plain tar: "
            "decompress it, or set data.tar.compressed=true"
        )
    return tarfile.open(fileobj=buffered, mode="r|*" if compression else "r|")


class _Peekable:
    """Adds ``peek`` to a stream without it (pipes from ``gopen``)."""

    def __init__(self, stream: IO[bytes]):
        self.stream, self.head = stream, b""

    def peek(self, size: int) -> bytes:
        while len(self.head) < size:
            more = self.stream.read(size - len(self.head))
            if not more:
                break
            self.head += more
        return self.head

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.stream.read(size)
        take = self.head if size < 0 else self.head[:size]
        self.head = self.head[len(take) :]
        rest = size - len(take) if size >= 0 else -1
        return take + self.stream.read(rest) if rest else take


def member_problem(member: tarfile.TarInfo, limits: TarLimits) -> str | None:
    """Why ``member`` must not be read, or None."""
    if member.issparse():
        return f"{member.name}: sparse member ({member.size} bytes once expanded) not read"
    if member.size > limits.max_member_bytes:
        return f"{member.name}: {member.size} bytes, over data.tar.max_member_mb={limits.max_member_mb:g}"
    return None


def members(tar: tarfile.TarFile, limits: TarLimits) -> Iterator[Member]:
    """The regular members of a streaming ``tar``, refused ones with their reason and no bytes.
    Names starting with ``__`` (webdataset's metadata) are left out."""
    for info in tar:
        if not info.isreg() or Path(info.name).name.startswith("__"):
            continue
        problem = member_problem(info, limits)
        if problem:
            yield Member(info.name, None, problem)
            continue
        handle = tar.extractfile(info)  # info.size <= the cap; read(n) would allocate n bytes
        yield Member(info.name, handle.read(info.size) if handle else b"", None)


def split_name(name: str) -> tuple[str, str]:
    """(key, extension) of a member name: ``d/0001.variants.json`` -> (``d/0001``, ``variants.json``)."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def group_samples(items: Iterator[Member], url: str) -> Iterator[dict[str, Any]]:
    """Consecutive members with one key -> ``{"__key__", "__url__", ext: bytes}``; a refused
    member adds its reason under ``__bad__``. A read error ends the stream after yielding the
    sample it interrupted (later stages judge whether that sample is complete)."""
    current: dict[str, Any] = {}
    try:
        for item in items:
            key, ext = split_name(item.name)
            if current and current["__key__"] != key:
                yield current
                current = {}
            current.update({"__key__": key, "__url__": url})
            if item.problem:
                current[BAD_KEY] = item.problem
            else:
                current[ext] = item.data
    except Exception:
        if current:
            yield current
        raise
    if current:
        yield current


def open_shard(url: str) -> IO[bytes]:
    """A local shard as a binary file; ``pipe:`` (only ever the user's own spec, see
    :func:`pipeline.base.shards.expand_spec`) through webdataset's ``gopen``."""
    if url.startswith("pipe:"):
        from webdataset.gopen import gopen

        return gopen(url)
    return open(url, "rb")


def read_samples(url: str, limits: TarLimits) -> Iterator[dict[str, Any]]:
    """The samples of shard ``url``, read within ``limits``."""
    with open_shard(url) as stream, open_stream(stream, url, limits) as tar:
        yield from group_samples(members(tar, limits), url)
