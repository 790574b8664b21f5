"""User errors in any CLI verb: one line on stderr naming the input, exit code 2, no traceback."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import lightclip.cli
import pipeline.cli
from pipeline.base.errors import is_user_error, one_line, run_guarded

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "stream"))
from synthetic import write_shards  # noqa: E402

MAINS = {"pipeline": pipeline.cli.main, "lightclip": lightclip.cli.main}


@dataclass
class Result:
    returncode: int
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``python -m PACKAGE ARGS`` through the package's dispatcher, in this process."""
    monkeypatch.chdir(REPO)

    def run(*args: str) -> Result:
        assert args[0] == "-m"
        code = MAINS[args[1]](list(args[2:]))  # an exception here fails the test: no traceback allowed
        return Result(code, capsys.readouterr().err)

    return run


def assert_one_line(result: Result, *needles: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


class Exploit:
    """A pickle that runs code when loaded (it would create the file named in ``path``)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def metadata_files(tmp_path) -> dict[str, Path]:
    files = {"empty": b"", "no_caption": b'{"url": "http://e.com/a.jpg"}\n', "garbage": b"\x00\xff\xfe not json\n" * 3}
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize(
    ("name", "needle"), [("empty", "is empty"), ("no_caption", "['caption'] not found"), ("garbage", "no readable row")]
)
def test_pipeline_build_metadata_errors(cli, metadata_files, tmp_path, name, needle):
    result = cli(
        "-m",
        "pipeline",
        "build",
        "--recipe",
        "recipes/data/demo.yaml",
        f"metadata.path={metadata_files[name]}",
        f"output={tmp_path / 'out'}",
        "augment.variants=0",
    )
    assert_one_line(result, str(metadata_files[name]), needle)


def test_pipeline_stats_of_a_missing_folder(cli, tmp_path):
    assert_one_line(cli("-m", "pipeline", "stats", str(tmp_path / "none")), "not found")


@pytest.fixture
def bad_checkpoints(tmp_path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    exploit = tmp_path / "exploit.pt"
    exploit.write_bytes(pickle.dumps(Exploit(tmp_path / "pwned")))
    return {"garbage": garbage, "exploit": exploit}


@pytest.mark.parametrize("kind", ["garbage", "exploit"])
def test_lightclip_eval_bad_checkpoint(cli, bad_checkpoints, tmp_path, kind):
    result = cli("-m", "lightclip", "eval", "--checkpoint", str(bad_checkpoints[kind]), "--datasets", "cifar10")
    assert_one_line(result, str(bad_checkpoints[kind]))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kind", ["garbage", "exploit"])
def test_lightclip_train_bad_checkpoint(cli, bad_checkpoints, tmp_path, kind):
    write_shards(tmp_path / "shards", [8, 8])
    result = cli(
        "-m",
        "lightclip",
        "train",
        "--recipe",
        "recipes/train/tiny.yaml",
        f"data.shards={tmp_path / 'shards'}",
        "data.workers=0",
        "optim.batch_size=4",
        f"run.out_dir={tmp_path / 'run'}",
        f"run.resume={bad_checkpoints[kind]}",
    )
    assert_one_line(result, str(bad_checkpoints[kind]))
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "run").exists()  # failed after the model was built: still nothing written


def test_missing_recipe_file_in_every_verb(cli, tmp_path):
    for verb in (["lightclip", "train"], ["pipeline", "build"]):
        result = cli("-m", *verb, "--recipe", str(tmp_path / "nope.yaml"))
        assert_one_line(result, "nope.yaml")


def test_guard_turns_only_user_errors_into_one_line(capsys, tmp_path):
    from pipeline.base.configs import ConfigError

    assert run_guarded("tool", lambda: (_ for _ in ()).throw(ConfigError("bad key x\nsee docs"))) == 2
    assert capsys.readouterr().err == "tool: bad key x see docs\n"
    assert run_guarded("tool", lambda: open(tmp_path / "missing.txt")) == 2
    assert str(tmp_path / "missing.txt") in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_guarded("tool", lambda: 1 / 0)
    assert is_user_error(FileNotFoundError(2, "No such file", "x")) and not is_user_error(KeyError("k"))
    assert one_line(FileNotFoundError(2, "No such file or directory", "a.yaml")) == "No such file or directory: a.yaml"


@pytest.mark.slow
def test_python_m_entry_point(tmp_path):
    """The same through ``python -m pipeline`` (the module entry point), in a subprocess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "stats", str(tmp_path / "none")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert_one_line(Result(result.returncode, result.stderr), "not found")


TRAIN_SECTIONS = [
    "",
    "model",
    "model.text",
    "model.fusion",
    "loss",
    "loss.token",
    "loss.masking",
    "data",
    "data.image",
    "optim",
    "run",
    "eval",
]


def recipe_with_typo(tmp_path: Path, section: str) -> Path:
    """The tiny training recipe with an unknown key ``typo_key`` in ``section`` ("" = top level)."""
    import yaml

    data = yaml.safe_load((REPO / "recipes" / "train" / "tiny.yaml").read_text())
    node = data
    for part in filter(None, section.split(".")):
        node = node.setdefault(part, {})
    node["typo_key"] = 1
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("section", TRAIN_SECTIONS, ids=lambda s: s or "top")
def test_a_typo_in_any_section_of_a_training_recipe_fails_at_start_up(cli, tmp_path, section):
    write_shards(tmp_path / "shards", [8])
    result = cli(
        "-m",
        "lightclip",
        "train",
        "--recipe",
        str(recipe_with_typo(tmp_path, section)),
        f"data.shards={tmp_path / 'shards'}",
        f"run.out_dir={tmp_path / 'run'}",
        "eval_every=1",
    )
    assert_one_line(result, "typo_key", section or "TrainConfig")
    assert not (tmp_path / "run").exists()  # before any step: not even the run folder


def test_an_unknown_evaluation_set_fails_before_the_first_step(cli, tmp_path):
    write_shards(tmp_path / "shards", [8])
    result = cli(
        "-m",
        "lightclip",
        "train",
        "--recipe",
        "recipes/train/tiny.yaml",
        f"data.shards={tmp_path / 'shards'}",
        f"run.out_dir={tmp_path / 'run'}",
        "eval_every=5",
        "eval.datasets=[cifar11]",
    )
    assert_one_line(result, "cifar11")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("verb", "extra"),
    [
        ("eval", ["--checkpoint", "x"]),
        ("export", ["--out", "y"]),
        ("classify", ["--model", "m", "--labels", "a,b", "img.png"]),
        ("summary", []),
    ],
)
def test_every_verb_takes_a_recipe_and_names_its_typos(cli, tmp_path, verb, extra):
    missing = cli("-m", "lightclip", verb, "--recipe", str(tmp_path / "nope.yaml"), *extra)
    assert_one_line(missing, "nope.yaml")
    (tmp_path / "r.yaml").write_text("typo_key: 1\n")
    assert_one_line(cli("-m", "lightclip", verb, "--recipe", str(tmp_path / "r.yaml"), *extra), "typo_key")


def test_eval_typo_in_a_nested_key_and_a_missing_checkpoint(cli, tmp_path):
    assert_one_line(cli("-m", "lightclip", "eval", "--checkpoint", str(tmp_path), "eval.batch_sise=8"), "batch_sise")
    assert_one_line(cli("-m", "lightclip", "eval", "--datasets", "cifar10"), "--checkpoint")
    assert_one_line(cli("-m", "lightclip", "eval", "--checkpoint", str(tmp_path)), str(tmp_path), "step_*.pt")


def tiny_checkpoint(folder: Path, model: dict | None = None) -> Path:
    """A run folder with one checkpoint: a tiny CLIP's weights and its config (``model``
    replaces the config, weights stay), and the run's tokenizer."""
    from lightclip.checkpoint import run_tokenizer, save_checkpoint
    from lightclip.models import CLIP, ModelConfig, TextConfig
    from pipeline.base.configs import to_dict
    from pipeline.base.tokenizer import CaptionTokenizer, train_tokenizer

    text = TextConfig(vocab_size=64, context_length=8, width=16, heads=2, layers=2, stages=2)
    config = ModelConfig(image_encoder="resnet18", image_size=32, embed_dim=16, text=text)
    weights = {f"clip.{k}": v for k, v in CLIP(config).state_dict().items()}
    path = save_checkpoint(
        {"step": 1, "config": {"model": model or to_dict(config)}, "model": weights},
        folder / "checkpoints" / "step_00000001.pt",
    )
    CaptionTokenizer(train_tokenizer(["a photo of a cat", "a dog"] * 5, vocab_size=64), 8).save(run_tokenizer(folder))
    return path


TRAIN_ERRORS = [  # (overrides, words of the one-line error)
    (["optim.batch_size=0"], ["optim.batch_size=0", "in [1, 1048576]"]),
    (["model.image_encoder=foo"], ["model.image_encoder", "'foo'", "swin_nano"]),
    (["optim.epochs=-1"], ["optim.epochs=-1"]),
    (["data.workers=-1"], ["data.workers=-1"]),
    (["run.device=foo"], ["run.device", "'foo'"]),
    (["optim.lr=.nan"], ["optim.lr"]),
    (["model.text.width=1000000000"], ["model.text.width"]),
    (["tokenizer=/etc/passwd"], ["/etc/passwd", "tokenizer"]),
    (["optim.batch_size=64"], ["optim.batch_size=64", "16 samples", "optim.batch_size<=16"]),
]
EVAL_ERRORS = [  # (flags, words of the one-line error)
    (["--batch-size", "0"], ["eval.batch_size=0"]),
    (["--workers", "-1"], ["eval.num_workers=-1"]),
    (["--device", "foo"], ["--device", "'foo'"]),
    (["--image-size", "100000"], ["eval.image_size"]),
    (["--tokenizer", "/etc/passwd"], ["--tokenizer", "/etc/passwd"]),
    (["--tokenizer", "/nonexistent/tokenizer.json"], ["/nonexistent/tokenizer.json"]),
]


@pytest.mark.timeout(300)
def test_every_bad_training_and_evaluation_input_is_one_line_before_anything_is_written(cli, tmp_path):
    import torch

    write_shards(tmp_path / "shards", [8, 8])
    for overrides, words in TRAIN_ERRORS:
        run_dir = tmp_path / "run"
        result = cli(
            "-m",
            "lightclip",
            "train",
            "--recipe",
            "recipes/train/tiny.yaml",
            f"data.shards={tmp_path / 'shards'}",
            "data.workers=1",
            "optim.batch_size=4",
            f"run.out_dir={run_dir}",
            *overrides,
        )
        assert_one_line(result, *words)
        assert not run_dir.exists(), overrides  # a failed start leaves no run folder
    checkpoint = tiny_checkpoint(tmp_path / "trained")
    cases = EVAL_ERRORS + ([] if torch.cuda.is_available() else [(["--device", "cuda"], ["--device cuda", "no GPU"])])
    for flags, words in cases:
        out = tmp_path / "eval_out"
        result = cli("-m", "lightclip", "eval", "--checkpoint", str(checkpoint), "--out", str(out), *flags)
        assert_one_line(result, *words)
        assert not out.exists(), flags


HELP_LIMIT_S = 3.0  # generous for a loaded 2-core machine; about 0.2 s when idle


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "verb", [[], ["eval"], ["export"], ["classify"], ["summary"]], ids=lambda v: v[0] if v else "top"
)
def test_help_answers_without_loading_torch(verb):
    code = (
        "import sys, time; from lightclip.cli import main; t = time.perf_counter()\n"
        f"try: main({verb + ['--help']!r})\nexcept SystemExit: pass\n"
        "print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=100)
    wall = time.perf_counter() - started
    seconds, torch_loaded = result.stdout.split()[-2:]
    assert torch_loaded == "False" and "usage: lightclip" in result.stdout
    assert wall < HELP_LIMIT_S, f"{verb} --help took {wall:.2f} s"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--checkpoint", "x", "--batch-size", "0"],
        ["eval", "--checkpoint", "nope"],
        ["eval", "--checkpoint", "x", "--device", "foo"],
        ["train", "--recipe", "tiny"],
        ["train", "--recipe", "nope.yaml"],
        ["export", "--out", "y"],
    ],
    ids=["batch", "checkpoint", "device", "no-data", "no-recipe", "export"],
)
def test_common_user_errors_answer_without_loading_torch(argv):
    code = f"import sys; from lightclip.cli import main\ncode = main({argv!r}); print(code, 'torch' in sys.modules)"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=100)
    wall = time.perf_counter() - started
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and wall < HELP_LIMIT_S, (wall, result.stderr)


@pytest.mark.timeout(120)
def test_train_help_lists_every_recipe_key_with_type_default_and_meaning():
    import dataclasses

    from lightclip.trainconfig import TrainConfig
    from pipeline.base.confighelp import iter_settings

    result = subprocess.run(
        [sys.executable, "-m", "lightclip", "train", "--help"], cwd=REPO, capture_output=True, text=True, timeout=100
    )
    assert result.returncode == 0
    keys = [s.key for s in iter_settings(TrainConfig)]
    assert len(keys) > 60 and "optim.batch_size" in keys and "run.save_optimizer" in keys
    for key in keys:
        assert f"  {key}  " in result.stdout, key
    assert "optim.batch_size  int = 4096" in result.stdout
    assert dataclasses.is_dataclass(TrainConfig)


HOSTILE_MODELS = {  # a change to a tiny model's stored config -> words of the error
    "huge width": ({"text": {"width": 10**9}}, "model.text.width"),
    "negative width": ({"text": {"width": -16}}, "model.text.width"),
    "unknown encoder": ({"image_encoder": "foo"}, "model.image_encoder"),
    "zero layers": ({"text": {"layers": 0}}, "model.text.layers"),
    "no vocabulary": ({"text": {"vocab_size": 0}}, "vocab_size"),
    "heads": ({"text": {"heads": 3}}, "heads"),
    "huge image": ({"image_size": 10**7}, "model.image_size"),
    "nan scale": ({"logit_scale_max": float("nan")}, "logit_scale_max"),
    "not a mapping": ({"text": [1, 2]}, "model.text"),
}


@pytest.mark.timeout(300)
def test_a_checkpoint_with_a_hostile_model_config_is_one_line_in_eval_and_export(cli, tmp_path):
    from lightclip.models import ModelConfig
    from pipeline.base.configs import to_dict

    good = to_dict(ModelConfig(image_encoder="resnet18", image_size=32, embed_dim=16))
    good["text"].update(vocab_size=64, context_length=8, width=16, heads=2, layers=2, stages=2)
    for name, (change, words) in HOSTILE_MODELS.items():
        model = {**good, **{k: ({**good[k], **v} if isinstance(v, dict) else v) for k, v in change.items()}}
        checkpoint = tiny_checkpoint(tmp_path / name.replace(" ", "_"), model)
        for verb in (
            ["eval", "--checkpoint", str(checkpoint)],
            ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "export")],
        ):
            assert_one_line(cli("-m", "lightclip", *verb), str(checkpoint), words)
        assert not (tmp_path / "export").exists()
