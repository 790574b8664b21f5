"""Hostile shards, generated small: a GNU sparse member that expands to GiB, a gzip stream
named ``.tar``, an oversized member. Shared by the loader/eval tests and bench/bench_hostile.py."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

BLOCK = 512


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def sparse_header(name: str, real_size: int, data_size: int = BLOCK) -> bytes:
    """A GNU sparse ('S') header: ``data_size`` stored bytes at offset 0, ``real_size`` expanded."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = data_size, tarfile.GNUTYPE_SPARSE, 0o644
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[386:398], header[398:410] = _octal(0, 12), _octal(data_size, 12)  # sparse map: one run
    header[482:483], header[483:495] = b"\0", _octal(real_size, 12)  # not extended; real size
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    return bytes(header)


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def plain_tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            add(tar, name, data)
    return buffer.getvalue()


def sparse_tar(before: list[tuple[str, bytes]], bomb: str, real_size: int, after: list[tuple[str, bytes]]) -> bytes:
    """A tar of ``before`` members, a sparse member ``bomb`` of ``real_size`` bytes, ``after``."""
    head = plain_tar(before)
    head = head[: -(-len(head.rstrip(b"\0")) // BLOCK) * BLOCK]  # without the end-of-archive zeros
    bomb_member = sparse_header(bomb, real_size) + b"\x01" * BLOCK
    return head + bomb_member + plain_tar(after)


def gzip_tar(members: list[tuple[str, bytes]]) -> bytes:
    """A gzip-compressed tar (what ``r|*`` would silently decompress)."""
    return gzip.compress(plain_tar(members), compresslevel=1)


def zero_member_gzip(name: str, size: int) -> bytes:
    """A gzip-compressed tar holding one ``size``-byte member of zeros, streamed (small memory)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1) as stream:
        with tarfile.open(fileobj=stream, mode="w|") as tar:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, _Zeros(size))
    return buffer.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def members_of(path: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every regular member of a (trusted, small) tar."""
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
