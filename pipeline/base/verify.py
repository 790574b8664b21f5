"""``python -m pipeline verify``: every shard of a build folder read back and checked against
``manifest.json`` and ``sizes.json`` (counts, checksums, members; every image decoded)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from pipeline.base.shards import (
    IMAGE_EXT,
    MANIFEST_FILE,
    MEMBER_EXTS,
    META_EXT,
    SHARD_NAME_FIELD,
    SHARD_SAMPLES_FIELD,
    SHARD_SUFFIX,
    SIZES_FILE,
    TMP_SUFFIX,
    VARIANTS_EXT,
    iter_samples,
    manifest_entries,
    read_json,
    sha256_file,
    shard_paths,
)
from pipeline.base.tarsafe import BAD_KEY


def check_sample(sample: dict[str, Any]) -> str | None:
    """Why a sample is broken (missing member, undecodable image or JSON), or None."""
    from PIL import Image

    if BAD_KEY in sample:
        return sample[BAD_KEY]
    missing = [ext for ext in MEMBER_EXTS if ext not in sample]
    if missing:
        return f"missing {missing}"
    try:
        with Image.open(io.BytesIO(sample[IMAGE_EXT])) as image:
            image.load()
        json.loads(sample[META_EXT])
        if not isinstance(json.loads(sample[VARIANTS_EXT]), list):
            return "variants.json is not a list"
    except Exception as err:  # noqa: BLE001 - any decode failure is a finding
        return f"{type(err).__name__}: {err}"
    return None


def verify_shard(path: Path, expected: dict[str, Any]) -> list[str]:
    """Problems with one shard against its manifest entry."""
    problems = []
    if sha256_file(path) != expected.get("sha256"):
        problems.append(f"{path.name}: sha256 differs from manifest.json")
    count = 0
    try:
        for sample in iter_samples(path):
            count += 1
            problem = check_sample(sample)
            if problem:
                problems.append(f"{path.name}: sample {sample['__key__']}: {problem}")
    except (tarfile.TarError, OSError, EOFError, ValueError) as err:
        problems.append(f"{path.name}: unreadable tar after {count} samples ({err})")
    if count != expected.get(SHARD_SAMPLES_FIELD):
        problems.append(f"{path.name}: {count} samples, manifest.json says {expected.get(SHARD_SAMPLES_FIELD)}")
    return problems


def verify_directory(directory: str | Path, progress: bool = False) -> list[str]:
    """Read every shard, check manifest counts/checksums and sizes.json; decode every image."""
    directory = Path(directory)
    manifest = read_json(directory, MANIFEST_FILE)
    problems = []
    listed = {entry[SHARD_NAME_FIELD]: entry for entry in manifest_entries(directory)}
    present = {p.name for p in shard_paths(directory)}
    problems += [f"{name}: listed in manifest.json but missing" for name in sorted(set(listed) - present)]
    problems += [f"{name}: present but not in manifest.json" for name in sorted(present - set(listed))]
    problems += [
        f"{name}: partial file from an interrupted build"
        for name in sorted(p.name for p in directory.glob(f"*{SHARD_SUFFIX}{TMP_SUFFIX}"))
    ]
    total = sum(entry[SHARD_SAMPLES_FIELD] for entry in listed.values())
    if total != manifest.get("total_samples"):
        problems.append(f"manifest.json: shard counts sum to {total}, total_samples is {manifest.get('total_samples')}")
    sizes_path = directory / SIZES_FILE
    if sizes_path.is_file():
        sizes = json.loads(sizes_path.read_text())
        if sizes != {name: entry[SHARD_SAMPLES_FIELD] for name, entry in listed.items()}:
            problems.append("sizes.json disagrees with manifest.json")
    names = sorted(set(listed) & present)
    if progress:
        from pipeline.base.progress import progress_bar

        names = progress_bar(names, desc="verify", unit="shard")
    for name in names:
        problems += verify_shard(directory / name, listed[name])
    return problems
