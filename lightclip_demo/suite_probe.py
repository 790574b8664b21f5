"""What a run's image tower learned, apart from how well its text side names the classes.

A linear probe (multinomial logistic regression, stratified k-fold) on the run's image
embeddings of the zero-shot set, beside its zero-shot top-1 from the same embeddings. When a
variant's probe gains and its zero-shot does not, the image side learned more and the
alignment with the class prompts did not follow; when neither moves, the image tower is no
better. Reads the final checkpoint of every run folder that still has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from lightclip.checkpoint import list_checkpoints
from lightclip.evaluation.sources import open_dataset
from lightclip.inference import load
from lightclip_demo.ablation_report import markdown_head
from lightclip_demo.suite_stats import t_interval

FOLDS = 5


def stratified_folds(labels: torch.Tensor, folds: int, seed: int = 0) -> torch.Tensor:
    """A fold index per sample: each class's samples shuffled, then dealt round the folds."""
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty_like(labels)
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold[members] = torch.arange(len(members)) % folds
    return fold


def fit_logistic(features: torch.Tensor, labels: torch.Tensor, classes: int, l2: float, steps: int) -> torch.Tensor:
    """Weights (D + 1, classes) of a multinomial logistic regression with an L2 penalty (L-BFGS)."""
    inputs = torch.cat([features, torch.ones(len(features), 1)], dim=1)
    weights = torch.zeros(inputs.shape[1], classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(inputs @ weights, labels) + l2 * weights[:-1].pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weights.detach()


def probe_accuracy(
    features: torch.Tensor, labels: torch.Tensor, folds: int = FOLDS, l2: float = 1e-3, steps: int = 200
) -> float:
    """Held-out top-1 of a linear probe, every sample held out once (stratified ``folds``, fewer
    when a class has fewer samples); features standardised with the training folds' mean and spread."""
    features, labels = features.double(), labels.long()
    classes = int(labels.max()) + 1
    folds = max(2, min(folds, int(labels.bincount().min())))  # every fold holds every class when it can
    fold = stratified_folds(labels, folds)
    correct = 0
    for k in range(folds):
        train, test = fold != k, fold == k
        if not test.any():
            continue
        mean, std = features[train].mean(0), features[train].std(0).clamp_min(1e-6)
        weights = fit_logistic(((features[train] - mean) / std).float(), labels[train], classes, l2, steps)
        inputs = torch.cat([((features[test] - mean) / std).float(), torch.ones(int(test.sum()), 1)], dim=1)
        correct += int(((inputs @ weights).argmax(1) == labels[test]).sum())
    return correct / len(labels)


def zeroshot_spec(datasets: Iterable[str]) -> str | None:
    """The image-folder set among a suite world's evaluation sets."""
    return next((spec for spec in datasets if spec.startswith("imagefolder:")), None)


def set_images(spec: str, root: str, transform: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of the evaluation set ``spec`` (resolved and read as the evaluation reads it,
    under ``root``) through ``transform``, and its class index (classes in folder order)."""
    dataset = open_dataset(spec, root, transform).dataset
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.tensor(labels)


def run_probe(
    run_dir: Path, spec: str, root: str, images: dict[int, tuple[torch.Tensor, torch.Tensor]]
) -> float | None:
    """The probe's held-out top-1 on ``spec`` from ``run_dir``'s final checkpoint (None when the
    run kept no checkpoint); ``images`` caches the set's images per image size across runs."""
    if not list_checkpoints(run_dir):
        return None
    model = load(run_dir)
    size = model.config.image_size
    if size not in images:
        images[size] = set_images(spec, root, model.transform)
    pixels, labels = images[size]
    with torch.no_grad():
        features = model.encode_image(pixels)
    return probe_accuracy(features, labels)


def seed_of(run_dir: Path) -> int:
    return int(run_dir.name.removeprefix("seed"))


def probe_table(
    name: str,
    variants: dict[str, list[Path]],
    datasets: list[str],
    baseline: str,
    zero_shot: dict[tuple[str, int], float | None],
    root: str = "",
) -> list[str]:
    """Markdown: per variant, the probe's top-1 and the zero-shot top-1 (``zero_shot``: points per
    (variant, seed), from the runs' results) and their paired Δ against ``baseline`` over the seeds
    both have checkpoints for; empty when no run kept one."""
    spec = zeroshot_spec(datasets)
    if spec is None:
        return []
    images: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    scores = {
        variant: {
            seed_of(d): (100 * p, zero_shot.get((variant, seed_of(d))))
            for d in dirs
            if (p := run_probe(d, spec, root, images)) is not None
        }
        for variant, dirs in variants.items()
    }
    if not scores.get(baseline):
        return []
    rows = []
    for variant, by_seed in scores.items():
        seeds = sorted(set(by_seed) & set(scores[baseline]))
        if not seeds:
            continue
        probe = [by_seed[s][0] for s in seeds]
        zero = [by_seed[s][1] for s in seeds]
        cells = [variant, str(len(seeds)), f"{sum(probe) / len(seeds):.1f}", f"{sum(zero) / len(seeds):.1f}"]
        if variant == baseline:
            cells += ["-", "-"]
        else:
            base = scores[baseline]
            cells.append(t_interval([by_seed[s][0] - base[s][0] for s in seeds]).text())
            cells.append(t_interval([by_seed[s][1] - base[s][1] for s in seeds]).text())
        rows.append("| " + " | ".join(cells) + " |")
    head = ["variant", "seeds", "probe top-1", "zero-shot top-1", "Δ probe", "Δ zero-shot"]
    return [
        f"### {name}: what the image tower separates (linear probe, {FOLDS}-fold, on the zero-shot set)",
        "",
        *markdown_head(head),
        *rows,
        "",
    ]
