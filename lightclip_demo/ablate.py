"""Ablation: which objective helps, at equal steps and at equal wall time, over several seeds.

Every variant is a list of ``key=value`` overrides of one training recipe (the full LightCLIP
recipe); every run trains with ``python -m lightclip train`` in its own folder, then its final
checkpoint is evaluated as a user would load it. A run whose ``result.json`` exists is not run
again, so a killed ablation resumes where it stopped. Outputs under ``out_dir``:
``ablation.md`` (tables), ``ablation.json`` (every run), ``ablation.png`` (curves).
By default the data is the offline demo world (built once under ``out_dir/data``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lightclip.checkpoint import latest_checkpoint, run_metrics
from lightclip.trainconfig import TrainConfig
from lightclip_demo.ablation_report import RunResult, write_outputs
from pipeline.base.configs import ConfigError, apply_overrides, from_dict, load_recipe
from pipeline.base.errors import UserError
from pipeline.base.progress import progress_bar
from pipeline.base.shards import MANIFEST_FILE

RESULT_FILE = "result.json"


def default_variants() -> dict[str, list[str]]:
    """The variants of ``recipes/ablation/demo.yaml``, where they are defined (CLIP, each
    LightCLIP term alone, the demo's LightCLIP, the paper's schedule): those of an ablation
    recipe that names none."""
    from pipeline.base.recipe_files import recipes_root

    return dict(load_recipe(recipes_root() / "ablation" / "demo.yaml")["variants"])


class RunFailed(UserError, RuntimeError):
    """A variant's training run exited with an error (its log says why)."""


@dataclass
class AblationConfig:
    """``recipe``: the full training recipe the variants override; ``data``: a shard folder
    (empty: build the demo world from ``world`` + ``build``); ``datasets``: evaluation sets
    (empty with the demo world: its zero-shot and retrieval sets; the first classification set
    is the headline); ``overrides`` apply to every run; ``parallel`` runs side by side, each
    with ``threads`` torch threads; ``baseline``: the variant the others are compared with."""

    out_dir: str = "runs/ablation"
    recipe: str = "recipes/train/demo.yaml"
    data: str = ""
    world: str = "recipes/data/demo_world.yaml"
    build: str = "recipes/data/demo.yaml"
    datasets: list[str] = field(default_factory=list)
    root: str = ""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    variants: dict[str, list[str]] = field(default_factory=default_variants)
    baseline: str = "CLIP (one-hot)"
    overrides: list[str] = field(default_factory=list)
    parallel: int = 2
    threads: int = 1


def slug(name: str) -> str:
    kept = "".join(c if c.isalnum() else "_" for c in name.lower())
    return "_".join(filter(None, kept.split("_")))


def prepare_data(config: AblationConfig) -> tuple[str, list[str], str]:
    """(shard folder, evaluation sets, evaluation root); builds the demo world when needed."""
    if config.data:
        if not config.datasets:
            raise ConfigError("ablation.data is set: give ablation.datasets too (e.g. [imagefolder:PATH])")
        return config.data, list(config.datasets), config.root
    from lightclip_demo.run import DemoConfig, DemoPaths, build_shards
    from lightclip_demo.world import WorldConfig, generate_world
    from pipeline.build import BuildConfig

    paths = DemoPaths(Path(config.out_dir))
    if not (paths.data / MANIFEST_FILE).is_file():
        generate_world(from_dict(WorldConfig, load_recipe(config.world)), paths.world)
        demo = DemoConfig(out_dir=str(paths.root), build=from_dict(BuildConfig, load_recipe(config.build)))
        build_shards(demo, paths)
    return str(paths.data), config.datasets or [paths.zeroshot, paths.retrieval], str(paths.world)


def run_directory(config: AblationConfig, variant: str, seed: int) -> Path:
    return Path(config.out_dir) / "runs" / slug(variant) / f"seed{seed}"


def run_overrides(
    config: AblationConfig, variant: str, seed: int, data: str, datasets: list[str], root: str
) -> list[str]:
    run_dir = run_directory(config, variant, seed)
    return [
        f"data.shards={data}",
        f"run.out_dir={run_dir}",
        f"run.seed={seed}",
        "run.resume=auto",
        f"run.threads={config.threads}",
        "run.progress=false",
        f"eval.datasets={json.dumps(datasets)}",
        f"eval.root={root}",
        "eval.progress=false",
        *config.overrides,
        *config.variants[variant],
    ]


def train_config(config: AblationConfig, overrides: list[str]) -> TrainConfig:
    """The resolved training config of one run (validates the variant before anything runs)."""
    return from_dict(TrainConfig, apply_overrides(load_recipe(config.recipe), overrides))


def train_seconds(metrics_file: Path, batch_size: int) -> tuple[float, list[tuple[int, float, dict[str, float]]]]:
    """Training wall seconds (evaluation excluded) and the curve [(step, seconds, eval metrics)]."""
    seconds, last, curve = 0.0, 0, []
    for line in metrics_file.read_text().splitlines():
        row = json.loads(line)
        if row.get("samples_per_s"):
            seconds += (row["step"] - last) * batch_size / row["samples_per_s"]
            last = row["step"]
        evals = {k.removeprefix("eval/"): v for k, v in row.items() if k.startswith("eval/")}
        if evals:
            curve.append((row["step"], seconds, evals))
    return seconds, curve


def run_counting_cpu(command: list[str], log: IO[str], env: dict[str, str]) -> tuple[int, float]:
    """(exit code, CPU seconds) of ``command``: user + system time of the process and of the
    children it waited for (loader workers), whatever else the machine runs meanwhile."""
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


def final_metrics(run_dir: Path, datasets: list[str], root: str) -> dict[str, dict[str, float]]:
    from lightclip.evalconfig import EvalConfig
    from lightclip_demo.run import evaluate_checkpoint

    config = EvalConfig(datasets=datasets, root=root, progress=False, strict=True)
    return evaluate_checkpoint(latest_checkpoint(run_dir), config)


def run_one(config: AblationConfig, variant: str, seed: int, data: tuple[str, list[str], str]) -> RunResult:
    """Train and evaluate one (variant, seed), or read its saved result."""
    overrides = run_overrides(config, variant, seed, *data)
    train = train_config(config, overrides)
    run_dir = Path(train.run.out_dir)
    saved = run_dir / RESULT_FILE
    if saved.is_file():
        return RunResult(**json.loads(saved.read_text()))
    env = {**os.environ, "OMP_NUM_THREADS": str(config.threads)}
    command = [sys.executable, "-m", "lightclip", "train", "--recipe", config.recipe, *overrides]
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "train.log").open("w") as log:
        started = time.perf_counter()
        returncode, cpu = run_counting_cpu(command, log, env)
    if returncode != 0:
        raise RunFailed(f"{variant} seed {seed} failed (exit {returncode}); see {run_dir / 'train.log'}")
    seconds, curve = train_seconds(run_metrics(run_dir), train.optim.batch_size)
    result = RunResult(
        variant=variant,
        seed=seed,
        steps=train.optim.max_steps,
        train_seconds=seconds,
        wall_seconds=time.perf_counter() - started,
        metrics=final_metrics(run_dir, data[1], data[2]),
        curve=curve,
        machine=machine(train.run.device),
        cpu_seconds=cpu,
    )
    saved.write_text(json.dumps(result.__dict__) + "\n")
    return result


@dataclass(frozen=True)
class Job:
    """One (variant, seed) of an ablation, with the ablation's prepared data."""

    config: AblationConfig
    variant: str
    seed: int
    data: tuple[str, list[str], str]

    def run(self) -> RunResult:
        return run_one(self.config, self.variant, self.seed, self.data)

    def done(self) -> bool:
        """Whether the run's result is on disk."""
        return (run_directory(self.config, self.variant, self.seed) / RESULT_FILE).is_file()


def ablation_jobs(config: AblationConfig) -> list[Job]:
    """Every (variant, seed) of ``config`` (its data prepared), each variant parsed before any
    run starts."""
    if config.baseline not in config.variants:
        raise ConfigError(f"ablation.baseline {config.baseline!r} is not one of the variants {list(config.variants)}")
    data = prepare_data(config)
    jobs = [Job(config, variant, seed, data) for seed in config.seeds for variant in config.variants]
    for job in jobs:
        train_config(config, run_overrides(config, job.variant, job.seed, *data))
    return jobs


def run_jobs(jobs: list[Job], parallel: int) -> list[RunResult]:
    """Every job, ``parallel`` at a time, in order; results in the jobs' order."""
    with ThreadPoolExecutor(max(1, parallel)) as pool, progress_bar(total=len(jobs), desc="ablation runs") as bar:
        results = []
        for result in pool.map(Job.run, jobs):
            results.append(result)
            bar.update(1)
    return results


def machine_line(results: list[RunResult]) -> str:
    """The machines the runs trained on and the load average at the end."""
    machines = "; ".join(sorted({result.machine for result in results if result.machine}))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{machines}; load average here {load:.1f} at the end"


def run_ablation(config: AblationConfig) -> Path:
    """Every (variant, seed) run, then the tables and plot; returns ``ablation.md``."""
    jobs = ablation_jobs(config)
    results = run_jobs(jobs, config.parallel)
    return write_outputs(Path(config.out_dir), results, config.baseline, jobs[0].data[1], machine_line(results))


def machine(device: str) -> str:
    """The machine a run trains on: the GPU's name, or the CPU."""
    import platform

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))} GPU, {os.cpu_count()} CPU cores"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, no GPU used"
