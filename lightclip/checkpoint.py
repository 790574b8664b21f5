"""Checkpoint files: atomic writes, strict loading, and the inference-model entry points.

A checkpoint is a plain ``dict`` saved with ``torch.save`` and readable with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only (configs as
plain dicts, RNG states as tensors). The one module that knows the layout of a run
directory::

    run_dir/config.yaml            resolved recipe
    run_dir/tokenizer.json         copy of the tokenizer the run trained with
    run_dir/metrics.jsonl          one JSON line per logged step
    run_dir/checkpoints/step_00001000.pt
    run_dir/eval/step_00001000/    `lightclip eval` results of that checkpoint (default)

Every command that takes "a run directory or a checkpoint file" resolves it with
:func:`resolve_checkpoint`.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightclip.models import CLIP, ModelConfig
from lightclip.trainconfig import check_model_config
from pipeline.base.configs import ConfigError, from_dict
from pipeline.base.errors import UserError
from pipeline.base.tokenizer import TOKENIZER_FILE, CaptionTokenizer

FORMAT = "lightclip-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
EVAL_DIR = "eval"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, damaged, or does not fit the model it is loaded into."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` goes in ``run_dir``."""
    return checkpoint_dir(run_dir) / checkpoint_name(step)


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory of a checkpoint file: the folder above ``checkpoints/``, else its own."""
    folder = Path(checkpoint).parent
    return folder.parent if folder.name == CHECKPOINT_DIR else folder


def run_tokenizer(run_dir: str | Path) -> Path:
    """Where a run keeps the tokenizer it trained with."""
    return Path(run_dir) / TOKENIZER_FILE


def run_config(run_dir: str | Path) -> Path:
    """Where a run keeps its resolved recipe."""
    return Path(run_dir) / CONFIG_FILE


def run_metrics(run_dir: str | Path) -> Path:
    """A run's metrics log (one JSON object per line)."""
    return Path(run_dir) / METRICS_FILE


def eval_dir(checkpoint: str | Path) -> Path:
    """Default folder of a checkpoint's evaluation results: ``<run dir>/eval/<step_N>``."""
    return run_dir_of(checkpoint) / EVAL_DIR / Path(checkpoint).stem


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def umask_mode(base: int = 0o666) -> int:
    """``base`` less the process umask: the mode ``open()``/``mkdir`` would give (mkstemp and
    mkdtemp use 0600/0700, which would hide a run's files from teammates)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` atomically: temporary file in the same folder, fsync, rename.

    A failed write leaves neither a partial ``path`` nor the temporary file behind. The file
    gets the usual mode of a new file (0644 under umask 022).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a damaged or foreign file raises
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a LightCLIP checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); use an earlier step_*.pt"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a LightCLIP checkpoint (no '{FORMAT}' marker)")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has format version {state['version']}; this build reads <= {VERSION}")
    return state


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest ``step_*.pt`` of ``run_dir`` (or None)."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or the newest checkpoint of a run directory (or of its
    ``checkpoints/`` folder); :class:`CheckpointError` naming ``path`` when there is none."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None and path.name == CHECKPOINT_DIR:
            found = latest_checkpoint(path.parent)
        if found is None:
            raise CheckpointError(
                f"{path} holds no {CHECKPOINT_DIR}/step_*.pt: give a trained run directory or a step_*.pt file"
            )
        return found
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: give a run directory or a step_*.pt file")
    return path


def prune_checkpoints(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` step checkpoints; return what was deleted."""
    found = list_checkpoints(run_dir)
    doomed = found[:-keep] if keep > 0 else []
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def model_config_of(state: dict[str, Any], where: str = "checkpoint") -> ModelConfig:
    """The ``ModelConfig`` stored in a loaded checkpoint, held to a recipe's bounds (a file that
    loads may still carry a hostile config: an unknown encoder, a width of 10**9)."""
    try:
        config = from_dict(ModelConfig, state["config"]["model"], "model")
        check_model_config(config)
        if config.text.vocab_size < 1:
            raise ConfigError(f"model.text.vocab_size={config.text.vocab_size} must be >= 1 in a trained model")
        return config
    except (KeyError, TypeError, ValueError) as err:  # ConfigError is a ValueError
        raise CheckpointError(f"{where} holds no usable model config: {err}") from err


def clip_state_dict(model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inference weights (``clip.*``) of a training-model state dict, prefix removed."""
    return {k[len("clip.") :]: v for k, v in model_state.items() if k.startswith("clip.")}


def load_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with an error that says what did not fit."""
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[:4]
        raise CheckpointError(
            f"{where} does not fit a {type(module).__name__} built from its config "
            f"(another architecture or a damaged file): {' '.join(first)}"
        ) from err


def load_inference_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[CLIP, ModelConfig]:
    """Build :class:`CLIP` from the checkpoint's model config and load its ``clip.*`` weights.

    Returns ``(model in eval mode, ModelConfig)``.
    """
    state = load_checkpoint(path, map_location)
    config = model_config_of(state, str(path))
    model = CLIP(config)
    weights = clip_state_dict(state.get("model", {}))
    if not weights:
        raise CheckpointError(f"{path} holds no 'clip.*' weights")
    load_weights(model, weights, str(path))
    return model.eval(), config


def load_tokenizer(path: str | Path, context_length: int, key: str = "--tokenizer") -> CaptionTokenizer:
    """The tokenizer at ``path`` (a file, or a folder holding ``tokenizer.json``); a file that is
    not a tokenizer is a :class:`ConfigError` naming ``key`` and the path."""
    path = Path(path)
    try:
        return CaptionTokenizer.from_file(path, context_length)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - the tokenizers library raises a bare Exception
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"{key} {path} is not a tokenizer.json written by `python -m pipeline build` ({first})"
        ) from err


def find_tokenizer(checkpoint_path: str | Path) -> Path:
    """The run's ``tokenizer.json`` for a checkpoint (its folder or its run directory)."""
    path = Path(checkpoint_path)
    for folder in (path.parent, run_dir_of(path)):
        candidate = run_tokenizer(folder)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {TOKENIZER_FILE} beside {path} or in its run directory {run_dir_of(path)}; "
        "training copies it there: pass the tokenizer path explicitly"
    )


def rng_state() -> dict[str, Any]:
    """torch, CUDA, Python and NumPy RNG states as tensors (``weights_only``-loadable)."""
    version, keys, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "python": torch.tensor([version, *keys], dtype=torch.int64),
        "python_gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
        "numpy": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy_extra": torch.tensor([np_pos, np_has_gauss, np_gauss], dtype=torch.float64),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    values = state["python"].tolist()
    gauss = state["python_gauss"].tolist()
    random.setstate((values[0], tuple(values[1:]), gauss[0] if gauss else None))
    pos, has_gauss, cached = state["numpy_extra"].tolist()
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
