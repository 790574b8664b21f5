"""The whole flow offline: synthetic world -> local HTTP server -> pipeline build on a Dask
LocalCluster -> LightCLIP and CLIP-baseline training -> zero-shot evaluation -> report.

:func:`run_demo` takes a :class:`DemoConfig` whose parts are the real configs of each stage
(``WorldConfig``, the pipeline's ``BuildConfig``, one ``TrainConfig`` per model); it only fills
in what follows from the demo's own layout (paths, the server's URL, the evaluation sets).
Layout under ``out_dir``: ``world/`` (images, metadata, held-out sets), ``data/`` (shards),
``<model>/`` (one training run each, ``metrics.jsonl`` and checkpoints), ``report.md`` with
``plots/``, ``results.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from lightclip.checkpoint import find_tokenizer, load_inference_model
from lightclip.evaluation import EvalConfig, evaluate_model
from lightclip.trainconfig import TrainConfig
from lightclip_demo.demo_report import ReportInputs, print_table, write_report
from lightclip_demo.world import WorldConfig, generate_world, write_metadata
from pipeline.base.configs import ConfigError
from pipeline.base.tokenizer import CaptionTokenizer
from pipeline.build import BuildConfig

MARKER_FILE = "demo.json"
RESULTS_FILE = "results.json"


@dataclass
class DemoConfig:
    """One demo run. ``models``: display name -> training config, trained in this order (the
    first is the one the demo is about, the others are baselines). Each model's ``eval`` section
    may hold :class:`EvalConfig` fields (batch size, recall k); the demo sets the datasets,
    root, image size and context length."""

    out_dir: str = "runs/demo"
    world: WorldConfig = field(default_factory=WorldConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    models: dict[str, TrainConfig] = field(default_factory=dict)


@dataclass
class DemoResult:
    report: Path
    final: dict[str, dict[str, dict[str, float]]]  # model -> dataset -> metric -> value
    timings: dict[str, float]


class PhaseTimer:
    """Wall seconds per named phase, in the order the phases ran."""

    def __init__(self, echo: Callable[[str], None] = print):
        self.seconds: dict[str, float] = {}
        self.echo = echo

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.echo(f"== {name}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start
            self.echo(f"== {name}: {self.seconds[name]:.1f} s")


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def world(self) -> Path:
        return self.root / "world"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def run(self, model: str) -> Path:
        return self.root / model.lower().replace(" ", "_")

    @property
    def zeroshot(self) -> str:
        """The held-out classification set, as ``lightclip.evaluation`` names it."""
        return f"imagefolder:{self.world / 'zeroshot'}"

    @property
    def retrieval(self) -> str:
        return f"karpathy:{self.world / 'retrieval'}"


def prepare_out_dir(paths: DemoPaths, config: DemoConfig) -> None:
    """Start from a clean demo folder; refuse to clear a non-empty folder the demo did not make."""
    root = paths.root
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER_FILE).is_file():
        raise FileExistsError(f"{root} is not empty and holds no {MARKER_FILE}: choose another --out")
    for child in [paths.world, paths.data, *(paths.run(name) for name in config.models)]:
        shutil.rmtree(child, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER_FILE).write_text(json.dumps({"models": list(config.models)}) + "\n")


def eval_config(paths: DemoPaths, train: TrainConfig) -> EvalConfig:
    """Zero-shot classification and retrieval on the world's held-out sets, sized for ``train``."""
    return replace(
        train.eval,
        datasets=[paths.zeroshot, paths.retrieval],
        root=str(paths.world),
        image_size=train.model.image_size,
        context_length=train.model.text.context_length,
        progress=False,
    )


def training_config(config: DemoConfig, paths: DemoPaths, name: str) -> TrainConfig:
    """The model's recipe pointed at the demo's shards, run folder and evaluation sets."""
    train = config.models[name]
    return replace(
        train,
        data=replace(train.data, shards=str(paths.data)),
        run=replace(train.run, out_dir=str(paths.run(name)), resume="none"),
        eval=eval_config(paths, train),
    )


def build_shards(config: DemoConfig, paths: DemoPaths) -> dict[str, Any]:
    """Serve ``world/train`` on 127.0.0.1 and run the real pipeline build against it."""
    from lightclip_demo.localserver import LocalServer
    from pipeline.build import build

    with LocalServer(paths.world / "train") as server:
        metadata = write_metadata(paths.world, server.url(""))
        build_config = replace(
            config.build,
            output=str(paths.data),
            metadata=replace(config.build.metadata, path=str(metadata)),
        )
        result = build(build_config)
        requests = sum(server.requests.values())
    return {
        "samples": result.total_samples,
        "shards": len(result.shards),
        "statuses": result.stats.get("statuses", {}),
        "http_requests": requests,
    }


def evaluate_checkpoint(checkpoint: Path, config: EvalConfig) -> dict:
    """Metrics of a checkpoint's inference model with its run's tokenizer, loaded back as a
    user would load it, on the CPU."""
    model, model_config = load_inference_model(checkpoint)
    tokenizer = CaptionTokenizer.from_file(find_tokenizer(checkpoint), model_config.text.context_length)
    return evaluate_model(model, tokenizer, config, torch.device("cpu"))


def run_demo(config: DemoConfig, echo: Callable[[str], None] = print) -> DemoResult:
    """Run every stage; returns the report path, the final metrics and the phase timings."""
    from lightclip.training import train

    if not config.models:
        raise ConfigError("DemoConfig.models is empty: give at least one training config")
    paths = DemoPaths(Path(config.out_dir))
    prepare_out_dir(paths, config)
    timer = PhaseTimer(echo)
    with timer.phase("world"):
        world = generate_world(config.world, paths.world)
    with timer.phase("build"):
        built = build_shards(config, paths)
    checkpoints: dict[str, Path] = {}
    for name in config.models:
        with timer.phase(f"train {name}"):
            checkpoints[name] = train(training_config(config, paths, name)).checkpoint
    final: dict[str, dict[str, dict[str, float]]] = {}
    with timer.phase("evaluate"):
        for name, checkpoint in checkpoints.items():
            final[name] = evaluate_checkpoint(checkpoint, eval_config(paths, config.models[name]))
    inputs = ReportInputs(
        out_dir=paths.root,
        runs={name: paths.run(name) for name in config.models},
        final=final,
        datasets={"zeroshot": paths.zeroshot, "retrieval": paths.retrieval},
        world=world,
        build=built,
        timings=timer.seconds,
    )
    with timer.phase("report"):
        report = write_report(inputs)
    (paths.root / RESULTS_FILE).write_text(
        json.dumps({"final": final, "timings": timer.seconds, "world": world, "build": built}, indent=1) + "\n"
    )
    echo(print_table(inputs))
    echo(f"report: {report}")
    return DemoResult(report, final, timer.seconds)
