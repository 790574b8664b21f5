"""``python -m pipeline build|stats|verify``: the only place that parses arguments or reads YAML."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pipeline.configs import ConfigError, from_dict, load_recipe
from pipeline.usererrors import run_guarded


def _build(args: argparse.Namespace) -> int:
    from pipeline.build import BuildConfig, BuildError, build
    from pipeline.metadata import MetadataError
    from pipeline.wordnet_data import WordNetMissingError

    try:
        config = from_dict(BuildConfig, load_recipe(args.recipe, args.overrides))
        result = build(config)
    except (ConfigError, BuildError, MetadataError, WordNetMissingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"output": str(result.output), "shards": len(result.shards),
                      "samples": result.total_samples, "stats": result.stats["statuses"]}, indent=2))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from pipeline.shards import MANIFEST_FILE, STATS_FILE, read_json

    try:
        stats = read_json(args.directory, STATS_FILE)
        manifest = read_json(args.directory, MANIFEST_FILE)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.directory}: {manifest['total_samples']} samples in {manifest['num_shards']} shards "
          f"({manifest['pattern']}), {manifest.get('variants', 0)} variants per caption")
    width = max(len(name) for name in stats["statuses"])
    for name, count in stats["statuses"].items():
        share = 100.0 * count / max(stats["total_rows"], 1)
        print(f"  {name:<{width}} {count:>12,d}  {share:6.2f}%")
    print(f"  {'total':<{width}} {stats['total_rows']:>12,d}")
    for title in ("unsafe_url_reasons", "download_errors"):
        if stats.get(title):
            print(f"{title}:")
            for reason, count in list(stats[title].items())[:10]:
                print(f"  {count:>10,d}  {reason[:100]}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pipeline.shards import verify_directory

    try:
        problems = verify_directory(args.directory, progress=True)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    print(f"{args.directory}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    verbs = top.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="metadata -> WebDataset shards (Dask)")
    build.add_argument("--recipe", required=True, help="YAML recipe, e.g. recipes/data/demo.yaml")
    build.add_argument("overrides", nargs="*", help="key=value overrides, e.g. output=data/x")
    build.set_defaults(run=_build)
    stats = verbs.add_parser("stats", help="print stats.json of a build")
    stats.add_argument("directory")
    stats.set_defaults(run=_stats)
    verify = verbs.add_parser("verify", help="read every shard; check counts, checksums, images")
    verify.add_argument("directory")
    verify.set_defaults(run=_verify)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run a verb; a user error (recipe, metadata, missing file...) is one line and exit code 2."""
    args = parser().parse_args(argv)
    return run_guarded(f"python -m pipeline {args.verb}", lambda: args.run(args))
