"""Turn a table of image URLs and captions into WebDataset shards for CLIP training.

``python -m pipeline build --recipe R [key=value ...]`` downloads, filters and packs the
images (resumable: rerun the same command after a stop); ``stats``, ``rejects`` and
``verify`` inspect a finished output folder. The only module that parses arguments.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

from pipeline.base.configs import from_dict, load_recipe
from pipeline.base.errors import run_guarded

EXIT_INTERRUPTED = 130
STOPPED = "stopped; rerun the same command to resume"
DESCRIPTION = """\
Build image-text training data: read a table of image URLs and captions (YFCC15M-V2 JSON,
jsonl, csv, tsv or parquet), download and resize the images, drop bad rows (each with its
reason), write caption variants and pack everything into WebDataset shards with a tokenizer.
"""


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT/SIGTERM: silence Dask's shutdown chatter, then unwind like Ctrl-C."""
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up
    raise KeyboardInterrupt


def _build(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe, args.overrides)  # a bad recipe is answered before the imports
    from pipeline.build import BuildConfig, build

    config = from_dict(BuildConfig, recipe)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        result = build(config)
    except KeyboardInterrupt:
        print(f"python -m pipeline build: {STOPPED}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        json.dumps(
            {
                "output": str(result.output),
                "shards": len(result.shards),
                "samples": result.total_samples,
                "stats": result.stats["statuses"],
            },
            indent=2,
        )
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    from pipeline.base.shards import MANIFEST_FILE, STATS_FILE, read_json

    stats = read_json(args.directory, STATS_FILE)
    manifest = read_json(args.directory, MANIFEST_FILE)
    print(
        f"{args.directory}: {manifest['total_samples']} samples in {manifest['num_shards']} shards "
        f"({manifest['pattern']}), {manifest.get('variants', 0)} variants per caption"
    )
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


def _rejects(args: argparse.Namespace) -> int:
    from pipeline.outcomes import read_outcomes, summary

    frame = read_outcomes(args.directory, ["key", "url", "status", "error"])
    if args.status and not (frame["status"] == args.status).any():
        names = sorted(set(frame["status"]))
        print(
            f"python -m pipeline rejects: no row has status {args.status!r}; the statuses are {names}", file=sys.stderr
        )
        return 2
    print(summary(frame, args.status, args.examples))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pipeline.base.verify import verify_directory

    problems = verify_directory(args.directory, progress=True)
    for problem in problems:
        print(problem)
    print(f"{args.directory}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


class SettingsHelp(argparse.Action):
    """``--help`` of ``build``: the recipe keys are read from the config dataclasses only here,
    so a plain run does not pay for the import."""

    def __init__(self, option_strings, dest, help=None):  # noqa: A002 - argparse's name
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from pipeline.base.confighelp import settings_help
        from pipeline.build import BuildConfig

        parser.epilog = "recipe keys (type = default, then meaning; a recipe sets its own values):\n" + settings_help(
            BuildConfig
        )
        parser.print_help()
        parser.exit()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m pipeline", description=DESCRIPTION)
    verbs = top.add_subparsers(dest="verb", required=True, metavar="{build,stats,rejects,verify}")
    build = verbs.add_parser(
        "build",
        help="download the images of a url/caption table into shards (rerun to resume)",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build (or resume) WebDataset shards from a recipe; any "
        "recipe key below can be set as key=value after the recipe.",
    )
    build.add_argument("-h", "--help", action=SettingsHelp, help="show this help and every recipe key")
    build.add_argument("--recipe", required=True, help="YAML recipe, e.g. recipes/data/demo.yaml")
    build.add_argument("overrides", nargs="*", help="key=value overrides, e.g. output=data/x")
    build.set_defaults(run=_build)
    stats = verbs.add_parser("stats", help="print stats.json of a build")
    stats.add_argument("directory")
    stats.set_defaults(run=_stats)
    rejects = verbs.add_parser("rejects", help="which rows were dropped and why (OUT/rows/*.parquet)")
    rejects.add_argument("directory", help="the build's output folder")
    rejects.add_argument("--status", help="only this status, e.g. download_failed or kept")
    rejects.add_argument("--examples", type=int, default=3, help="example rows per status (default 3)")
    rejects.set_defaults(run=_rejects)
    verify = verbs.add_parser("verify", help="read every shard; check counts, checksums, images")
    verify.add_argument("directory")
    verify.set_defaults(run=_verify)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run a verb; a user error (recipe, metadata, missing file...) is one line and exit code 2,
    anything else keeps its traceback."""
    args = parser().parse_args(argv)
    return run_guarded(f"python -m pipeline {args.verb}", lambda: args.run(args))
