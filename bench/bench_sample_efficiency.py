"""Sample efficiency: the toolkit's CLIP recipe against a minimal reference CLIP on the same shards.

The reference is written independently of ``lightclip``: timm ResNet-18 -> D, a small word-level
text transformer with mean pooling over words, AdamW at a constant learning rate, horizontal
flips only, images read with plain ``webdataset``. It is evaluated twice: by its own few lines
(prompt-averaged class embeddings, top-1 over an ImageFolder) and by the toolkit's zero-shot code
(through an adapter that turns the toolkit's token ids back into text), so training and
evaluation can be told apart. The toolkit side is ``python -m lightclip train`` with a recipe
(default ``recipes/train/demo_clip.yaml``), evaluated every ``--eval-every`` steps on the same
set. Both see the same number of samples. Writes ``bench/results/sample_efficiency.json``.

    python bench/bench_sample_efficiency.py --shards runs/world/data --zeroshot runs/world/world/zeroshot
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image
from torch import nn
from torchvision import transforms as T

from pipeline.base.photometric import CLIP_MEAN as MEAN  # the evaluation's own normalisation
from pipeline.base.photometric import CLIP_STD as STD

RESULTS = Path(__file__).parent / "results" / "sample_efficiency.json"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class WordVocab:
    """Word -> id (0 pad, 1 unknown) from training captions."""

    def __init__(self, captions: list[str], length: int = 24):
        counts: dict[str, int] = {}
        for caption in captions:
            for word in words(caption):
                counts[word] = counts.get(word, 0) + 1
        self.ids = {w: i + 2 for i, w in enumerate(sorted(counts))}
        self.length = length

    def __len__(self) -> int:
        return len(self.ids) + 2

    def encode(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.ids.get(w, 1) for w in words(text)][: self.length]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


class ReferenceCLIP(nn.Module):
    def __init__(self, vocab: WordVocab, dim: int = 128, width: int = 128, layers: int = 2):
        super().__init__()
        self.vocab = vocab
        self.visual = timm.create_model("resnet18", pretrained=False, num_classes=0)
        self.image_proj = nn.Linear(512, dim)
        self.embed = nn.Embedding(len(vocab), width)
        self.pos = nn.Parameter(torch.randn(vocab.length, width) * 0.01)
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.text = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.text_proj = nn.Linear(width, dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.6593))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.visual(images)), dim=-1)

    def encode_words(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        states = self.text(self.embed(ids) + self.pos[: ids.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).float().unsqueeze(-1)
        pooled = (states * keep).sum(1) / keep.sum(1).clamp(min=1)
        return F.normalize(self.text_proj(pooled), dim=-1)


class ReferenceWithToolkitText(ReferenceCLIP):
    """The reference with its text transformer replaced by the toolkit's ``TextEncoder`` (same
    words, mean pooling over words and loop): a bisection tool for the text tower. ``init``:
    ``toolkit`` (CLIP's, token embedding std 0.02), ``torch`` (PyTorch's defaults: embedding std
    1, default Linear init), ``embedding`` (std 1 only) or ``linear`` (default Linear init only)."""

    def __init__(self, vocab: WordVocab, layers: int = 4, width: int = 64, init: str = "toolkit", dim: int = 128):
        from lightclip.models.text import TextConfig, TextEncoder

        super().__init__(vocab, dim=dim)
        del self.embed, self.pos, self.text
        config = TextConfig(
            vocab_size=len(vocab),
            context_length=vocab.length,
            width=width,
            heads=4,
            layers=layers,
            stages=min(layers, 4),
            pooling="mean",
        )
        self.tower = TextEncoder(config)
        if init in ("torch", "embedding"):
            nn.init.normal_(self.tower.token_embedding.weight, std=1.0)
        if init in ("torch", "linear"):
            for module in self.tower.modules():
                if isinstance(module, nn.Linear):
                    module.reset_parameters()
        self.text_proj = nn.Linear(width, dim)

    def encode_words(self, ids: torch.Tensor) -> torch.Tensor:
        states = self.tower.ln_final(self.tower(ids)[-1])
        return F.normalize(self.text_proj(self.tower.pool(ids, states)), dim=-1)


def reference_model(vocab: WordVocab, text: str) -> ReferenceCLIP:
    """``own``, or ``toolkit[:LAYERSxWIDTH[:INIT]]`` (see :class:`ReferenceWithToolkitText`)."""
    if text == "own":
        return ReferenceCLIP(vocab)
    name, shape, init = (text.split(":") + ["4x64", "toolkit"])[:3]
    if name != "toolkit" or not re.fullmatch(r"\d+x\d+", shape):
        raise SystemExit(f"--reference-text {text!r}: use own or toolkit[:LAYERSxWIDTH[:INIT]]")
    layers, width = map(int, shape.split("x"))
    return ReferenceWithToolkitText(vocab, layers, width, init)


class ToolkitAdapter(nn.Module):
    """``encode_text`` on the toolkit tokenizer's ids: decode to text, re-encode as words."""

    def __init__(self, model: ReferenceCLIP, tokenizer):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        texts = [self.tokenizer.decode(row.tolist()) for row in tokens]
        return self.model.encode_words(self.model.vocab.encode(texts).to(tokens.device))


def shard_list(folder: Path) -> list[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [str(folder / s["name"]) for s in manifest["shards"]]


def read_captions(urls: list[str]) -> list[str]:
    return [text for (text,) in wds.WebDataset(urls, shardshuffle=False).decode().to_tuple("txt")]


def train_loader(urls: list[str], size: int, batch: int, seed: int):
    flip = T.Compose(
        [T.Resize(size), T.CenterCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]
    )
    data = (
        wds.WebDataset(urls, shardshuffle=len(urls), seed=seed, resampled=True)
        .shuffle(2000, initial=1000)
        .decode("pil")
        .to_tuple("jpg", "txt")
        .map_tuple(flip, lambda t: t)
        .batched(batch, partial=False)
    )
    return iter(data)


def zeroshot_set(root: Path, size: int) -> tuple[list[str], list[str], list[tuple[Path, int]]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    templates = [t for t in (root / "templates.txt").read_text().splitlines() if t.strip()]
    items = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())]
    return classes, templates, items


@torch.no_grad()
def own_zeroshot(model: ReferenceCLIP, root: Path, size: int) -> float:
    """Top-1 by the reference's own few lines."""
    classes, templates, items = zeroshot_set(root, size)
    prompts = [t.replace("{c}", c) for c in classes for t in templates]
    text = model.encode_words(model.vocab.encode(prompts)).view(len(classes), len(templates), -1).mean(1)
    text = F.normalize(text, dim=-1)
    prep = T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )
    images = torch.stack([prep(Image.open(f).convert("RGB")) for f, _ in items])
    labels = torch.tensor([label for _, label in items])
    predictions = torch.cat([(model.encode_image(chunk) @ text.T).argmax(1) for chunk in images.split(256)])
    return float((predictions == labels).float().mean() * 100)


@torch.no_grad()
def toolkit_zeroshot(model: ReferenceCLIP, tokenizer_file: Path, root: Path, size: int) -> float:
    from lightclip.evaluation import EvalConfig, evaluate_model
    from pipeline.base.tokenizer import CaptionTokenizer

    tokenizer = CaptionTokenizer.from_file(tokenizer_file, 32)
    config = EvalConfig(
        datasets=[f"imagefolder:{root}"], root=str(root), image_size=size, context_length=32, progress=False
    )
    results = evaluate_model(ToolkitAdapter(model, tokenizer), tokenizer, config, torch.device("cpu"))
    return float(next(iter(results.values()))["acc1"] * 100)


def evaluate_reference(model: ReferenceCLIP, args: argparse.Namespace, step: int, seconds: float) -> dict:
    model.eval()
    point = {
        "step": step,
        "samples": step * args.batch,
        "seconds": round(seconds, 1),
        "own_acc1": own_zeroshot(model, args.zeroshot, args.image_size),
        "toolkit_eval_acc1": toolkit_zeroshot(model, args.shards / "tokenizer.json", args.zeroshot, args.image_size),
    }
    model.train()
    print(json.dumps({"reference": point}), flush=True)
    return point


def train_reference(args: argparse.Namespace, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    urls = shard_list(args.shards)
    model = reference_model(WordVocab(read_captions(urls)), args.reference_text)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    batches, curve, start = train_loader(urls, args.image_size, args.batch, seed), [], time.perf_counter()
    for step in range(1, args.steps + 1):
        images, texts = next(batches)
        image, text = model.encode_image(images), model.encode_words(model.vocab.encode(list(texts)))
        logits = model.logit_scale.exp().clamp(max=100) * image @ text.T
        labels = torch.arange(len(logits))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            curve.append(evaluate_reference(model, args, step, time.perf_counter() - start))
    return curve


def train_toolkit(args: argparse.Namespace, seed: int, out: Path) -> list[dict]:
    """The toolkit's recipe through its own CLI; the curve from its ``metrics.jsonl``."""
    dataset = f"imagefolder:{args.zeroshot}"
    overrides = [
        f"data.shards={args.shards}",
        f"run.out_dir={out}",
        f"run.seed={seed}",
        "run.resume=none",
        f"optim.max_steps={args.steps}",
        f"optim.batch_size={args.batch}",
        f"model.image_size={args.image_size}",
        f"eval_every={args.eval_every}",
        f"eval.datasets=[{dataset!r}]",
        f"eval.root={args.zeroshot}",
        "eval.progress=false",
        "run.progress=false",
        *args.override,
    ]
    subprocess.run([sys.executable, "-m", "lightclip", "train", "--recipe", args.recipe, *overrides], check=True)
    curve = []
    for line in (out / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        key = f"eval/{dataset}/acc1"
        if key in row:
            curve.append(
                {
                    "step": row["step"],
                    "samples": row["step"] * args.batch,
                    "acc1": row[key] * 100,
                    "logit_scale": row.get("logit_scale"),
                }
            )
    return curve


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, required=True, help="shard folder (manifest.json, tokenizer.json)")
    parser.add_argument("--zeroshot", type=Path, required=True, help="ImageFolder with templates.txt")
    parser.add_argument("--recipe", default="recipes/train/demo_clip.yaml")
    parser.add_argument("--steps", type=int, default=220)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="the reference's constant learning rate")
    parser.add_argument("--eval-every", type=int, default=55)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", choices=["reference", "toolkit", "both"], default="both")
    parser.add_argument(
        "--reference-text",
        default="own",
        help="the reference's text tower: own, or toolkit[:LAYERSxWIDTH[:INIT]] with INIT one of "
        "toolkit, torch, embedding, linear (the bisection in docs/benchmarks.md)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/sample_efficiency"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("override", nargs="*", help="extra key=value overrides of the toolkit recipe")
    return parser.parse_args()


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    runs: dict[str, dict[int, list[dict]]] = {"reference": {}, "toolkit": {}}
    for seed in args.seeds:
        if args.only in ("reference", "both"):
            runs["reference"][seed] = train_reference(args, seed)
        if args.only in ("toolkit", "both"):
            runs["toolkit"][seed] = train_toolkit(args, seed, args.out / f"toolkit_seed{seed}")
    final = {
        name: summary([curve[-1]["own_acc1" if name == "reference" else "acc1"] for curve in per_seed.values()])
        for name, per_seed in runs.items()
        if per_seed
    }
    if len(final) == 2:
        final["ratio_toolkit_to_reference"] = final["toolkit"]["mean"] / max(final["reference"]["mean"], 1e-9)
    result = {
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s) per run, no GPU",
        "args": {k: str(v) for k, v in vars(args).items()},
        "final_acc1": final,
        "curves": runs,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(final, indent=1))


if __name__ == "__main__":
    main()
