"""`python -m lightclip results merge DIR [DIR ...] -o OUT.csv`: the per-(model, dataset) result
files that `lightclip eval` writes (CLIP_benchmark's shape; CLIP_benchmark's own files too) as
one CSV table."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    merge = actions.add_parser("merge", help="merge benchmark_*.json result files into one CSV")
    merge.add_argument("folders", nargs="+", metavar="DIR", help="folders searched recursively for result JSON files")
    merge.add_argument("-o", "--out", required=True, help="CSV file to write")


def run(args: argparse.Namespace) -> int:
    from lightclip.interop.benchmark_results import merge_to_csv  # imports torch: not for --help

    rows = merge_to_csv(args.folders, args.out)
    print(f"{rows} result(s) -> {args.out}")
    return 0
