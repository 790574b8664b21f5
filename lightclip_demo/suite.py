"""The ablation suite: the same variants on several synthetic worlds, paired by seed.

Each world is one :class:`~lightclip_demo.ablate.AblationConfig` (its own data, budget and
overrides) under ``out_dir/<world>``; the runs of every world share one pool of ``parallel``
processes, and a finished run is never trained again (its ``result.json`` is read back). The
report ``suite.md`` (and ``suite.json``) gives, per world and variant, the paired difference with
the baseline and its 95% t interval for zero-shot top-1 and R@1 both ways, at equal steps and at
the baseline's CPU time, and the same over the mean of the worlds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lightclip_demo.ablate import (
    AblationConfig,
    Job,
    ablation_jobs,
    default_variants,
    machine_line,
    run_directory,
    run_jobs,
)
from lightclip_demo.ablation_report import RunResult, by_variant, headline, write_outputs
from lightclip_demo.suite_probe import probe_table
from lightclip_demo.suite_report import suite_markdown
from lightclip_demo.suite_stats import ZERO_SHOT, final_value, metric_keys
from lightclip_demo.suite_terms import terms_table
from pipeline.base.configs import from_dict

SUITE_FILE = "suite.md"


@dataclass
class SuiteWorld:
    """A world of the suite: its world and build recipes (or, as in an ablation, ``data``: built
    shards with their ``datasets`` and ``root``), the training overrides that size the runs for
    it (image size, steps), ``seeds`` (empty: the suite's) and ``budget``: one line on how the
    steps were chosen."""

    world: str = ""
    build: str = "recipes/data/demo.yaml"
    data: str = ""
    datasets: list[str] = field(default_factory=list)
    root: str = ""
    overrides: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    budget: str = ""

    def __post_init__(self) -> None:
        if not (self.world or self.data):
            raise ValueError("a suite world needs `world` (a world recipe) or `data` (built shards)")


@dataclass
class SuiteConfig:
    """``variants`` (overrides of ``recipe``) run on every world with every seed; ``overrides``
    apply to every run, before each world's own. ``report_only``: train nothing, report the
    runs already on disk (e.g. a later seed that only some variants ran). ``probe``: add a linear
    probe of every run's image embeddings on the zero-shot set beside its zero-shot top-1
    (:mod:`lightclip_demo.suite_probe`; runs that kept their final checkpoint). A world set to
    null (``claims: null``) is left out: how a recipe drops a world its ``base:`` names."""

    out_dir: str = "runs/ablation_suite"
    recipe: str = "recipes/train/demo.yaml"
    worlds: dict[str, SuiteWorld] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    variants: dict[str, list[str]] = field(default_factory=default_variants)
    baseline: str = "CLIP (one-hot)"
    overrides: list[str] = field(default_factory=list)
    parallel: int = 2
    threads: int = 1
    report_only: bool = False
    probe: bool = False

    def __post_init__(self) -> None:
        self.worlds = {
            name: world if isinstance(world, SuiteWorld) else from_dict(SuiteWorld, world, f"worlds.{name}")
            for name, world in self.worlds.items()
            if world is not None
        }
        if not self.worlds:
            raise ValueError("suite.worlds is empty: name at least one world (see recipes/ablation/suite.yaml)")
        if self.baseline not in self.variants:
            raise ValueError(f"suite.baseline {self.baseline!r} is not one of the variants {list(self.variants)}")


def world_ablation(config: SuiteConfig, name: str) -> AblationConfig:
    """The ablation of one world of the suite."""
    world = config.worlds[name]
    return AblationConfig(
        out_dir=str(Path(config.out_dir) / name),
        recipe=config.recipe,
        world=world.world,
        build=world.build,
        data=world.data,
        datasets=list(world.datasets),
        root=world.root,
        seeds=list(world.seeds or config.seeds),
        variants=dict(config.variants),
        baseline=config.baseline,
        overrides=[*config.overrides, *world.overrides],
        parallel=config.parallel,
        threads=config.threads,
    )


def run_suite(config: SuiteConfig) -> Path:
    """Every world's runs (one pool for all), each world's ablation report, then ``suite.md``."""
    ablations = {name: world_ablation(config, name) for name in config.worlds}
    jobs = {name: ablation_jobs(ablation) for name, ablation in ablations.items()}
    if config.report_only:
        jobs = {name: [job for job in world_jobs if job.done()] for name, world_jobs in jobs.items()}
    flat = seed_major(jobs)
    results = dict(zip(map(id, flat), run_jobs(flat, config.parallel)))
    per_world: dict[str, list[RunResult]] = {}
    for name, world_jobs in jobs.items():
        per_world[name] = [results[id(job)] for job in world_jobs]
        datasets = world_jobs[0].data[1]
        write_outputs(
            Path(ablations[name].out_dir), per_world[name], config.baseline, datasets, machine_line(per_world[name])
        )
    datasets = {name: world_jobs[0].data[1] for name, world_jobs in jobs.items()}
    roots = {name: world_jobs[0].data[2] for name, world_jobs in jobs.items()}
    folders = {name: run_dirs(world_jobs) for name, world_jobs in jobs.items()}
    return write_suite(config, per_world, datasets, folders, roots)


def seed_major(jobs: dict[str, list[Job]]) -> list[Job]:
    """Every world's jobs in one list, seed by seed (all worlds' first seed, then the next), so a
    stopped suite has balanced partial results; a world's own seeds are kept whatever they are
    (a stable sort: worlds and variants keep their order within a seed)."""
    return sorted((job for world_jobs in jobs.values() for job in world_jobs), key=lambda job: job.seed)


def run_dirs(jobs: list[Job]) -> dict[str, list[Path]]:
    """variant -> its runs' folders."""
    folders: dict[str, list[Path]] = {}
    for job in jobs:
        folders.setdefault(job.variant, []).append(run_directory(job.config, job.variant, job.seed))
    return folders


def zero_shots(runs: list[RunResult], sets: tuple[str, str | None]) -> dict[tuple[str, int], float | None]:
    """(variant, seed) -> the run's final zero-shot top-1 in points."""
    keys = metric_keys(*sets)[ZERO_SHOT]
    return {(run.variant, run.seed): final_value(run, keys) for run in runs}


def write_suite(
    config: SuiteConfig,
    per_world: dict[str, list[RunResult]],
    datasets: dict[str, list[str]],
    folders: dict[str, dict[str, list[Path]]],
    roots: dict[str, str],
) -> Path:
    """``suite.md`` and ``suite.json`` under ``out_dir``; returns ``suite.md``. ``roots``: each
    world's evaluation root (relative dataset paths are under it)."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sets = {name: headline(datasets[name], runs) for name, runs in per_world.items()}
    budgets = {name: world.budget for name, world in config.worlds.items()}
    machine = machine_line([run for runs in per_world.values() for run in runs])
    text = suite_markdown({n: by_variant(r) for n, r in per_world.items()}, sets, config.baseline, budgets, machine)
    terms = [line for name, variants in folders.items() for line in terms_table(name, variants)]
    text += "\n\n## What the terms reached\n\n" + "\n".join(terms)
    if config.probe:
        probes = [
            line
            for name, variants in folders.items()
            for line in probe_table(
                name, variants, datasets[name], config.baseline, zero_shots(per_world[name], sets[name]), roots[name]
            )
        ]
        text += "\n## What the image tower separates\n\n" + "\n".join(probes)
    report = out / SUITE_FILE
    report.write_text(text)
    payload = {
        "machine": machine,
        "baseline": config.baseline,
        "config": asdict(config),
        "worlds": {
            name: {"datasets": datasets[name], "runs": [asdict(r) for r in runs]} for name, runs in per_world.items()
        },
    }
    (out / "suite.json").write_text(json.dumps(payload, indent=1) + "\n")
    return report
