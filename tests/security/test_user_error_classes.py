"""Every command line reports a :class:`UserError` (any subclass) as one line with exit code 2,
and lets anything else, a bug, out with its traceback."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import lightclip.cli
import lightclip_demo.cli
import pipeline.cli
from pipeline.base.configs import ConfigError, from_dict
from pipeline.base.errors import EXIT_USER_ERROR, UserError

REPO = Path(__file__).resolve().parents[2]
DEFINING_MODULES = (  # the modules that define user errors, imported so that every subclass is known
    "pipeline.base.recipe_files",
    "pipeline.build",
    "pipeline.stream",
    "lightclip.checkpoint",
    "lightclip.inference",
    "lightclip.export",
    "lightclip.evaluation.sources",
    "lightclip.evaluation.errors",
    "lightclip.interop.benchmark_results",
    "lightclip.interop.openclip_format",
    "lightclip.training",
    "lightclip_demo.ablate",
)
WAS_VALUE_ERROR = {"ConfigError", "MetadataError", "ShardSpecError", "TarRefused", "LoadError", "UnknownDataset"}
WAS_RUNTIME_ERROR = {"BuildError", "WordNetMissingError", "DataLossError", "CheckpointError", "ExportError"}
KNOWN = WAS_VALUE_ERROR | WAS_RUNTIME_ERROR | {"DatasetUnavailable", "NonFiniteLossError", "RunFailed"}


def subclasses(cls: type) -> set[type]:
    direct = set(cls.__subclasses__())
    return direct.union(*(subclasses(sub) for sub in direct))


def user_errors() -> list[type[UserError]]:
    for name in DEFINING_MODULES:
        importlib.import_module(name)
    return sorted(subclasses(UserError), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


USER_ERRORS = user_errors()


def instance(cls: type[UserError]) -> UserError:
    """``cls`` with a two-line message, whatever its constructor takes."""
    err = cls.__new__(cls)
    Exception.__init__(err, f"{cls.__name__} names the input\nand says what to change")
    return err


def raising(err: BaseException) -> Callable[..., int]:
    def run(*args, **kwargs) -> int:
        raise err

    return run


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """``pipeline build`` installs its own SIGINT/SIGTERM handlers: put the test runner's back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def run_pipeline(monkeypatch, run: Callable[..., int]) -> int:
    monkeypatch.setattr(pipeline.cli, "_stats", run)
    return pipeline.cli.main(["stats", "some/folder"])


def run_lightclip(monkeypatch, run: Callable[..., int]) -> int:
    summary = importlib.import_module("lightclip.cli.summary")
    monkeypatch.setattr(summary, "run", run)
    return lightclip.cli.main(["summary"])


def run_demo(monkeypatch, run: Callable[..., int]) -> int:
    monkeypatch.setattr(lightclip_demo.cli, "run_demo", run)
    return lightclip_demo.cli.main(["--out", "some/folder"])


CLIS = {
    "python -m pipeline stats": run_pipeline,
    "lightclip summary": run_lightclip,
    "lightclip-demo": run_demo,
}


def test_every_user_error_subclasses_the_base_and_keeps_its_old_base():
    names = {cls.__name__ for cls in USER_ERRORS}
    assert names >= KNOWN, KNOWN - names
    for cls in USER_ERRORS:
        if cls.__name__ in WAS_VALUE_ERROR:
            assert issubclass(cls, ValueError), cls  # `except ValueError` callers still catch it
        if cls.__name__ in WAS_RUNTIME_ERROR:
            assert issubclass(cls, RuntimeError), cls


@pytest.mark.parametrize("prog", list(CLIS))
@pytest.mark.parametrize("cls", USER_ERRORS, ids=lambda cls: cls.__name__)
def test_every_user_error_is_one_line_and_exit_2(cls, prog, monkeypatch, capsys):
    code = CLIS[prog](monkeypatch, raising(instance(cls)))
    assert code == EXIT_USER_ERROR
    assert capsys.readouterr().err == f"{prog}: {cls.__name__} names the input and says what to change\n"


@pytest.mark.parametrize("prog", list(CLIS))
@pytest.mark.parametrize("bug", [ZeroDivisionError("division by zero"), KeyError("k"), ValueError("a bug")])
def test_a_bug_keeps_its_traceback(bug, prog, monkeypatch, capsys):
    with pytest.raises(type(bug)):
        CLIS[prog](monkeypatch, raising(bug))
    assert capsys.readouterr().err == ""


def test_a_bug_inside_build_or_train_is_not_taken_for_a_user_error(monkeypatch, tmp_path):
    """The two verbs that once caught any ValueError: a plain one is a bug now."""
    monkeypatch.chdir(REPO)
    build = importlib.import_module("pipeline.build")
    monkeypatch.setattr(build, "build", raising(ValueError("a bug in the build")))
    with pytest.raises(ValueError, match="a bug in the build"):
        pipeline.cli.main(["build", "--recipe", "recipes/data/demo.yaml", f"output={tmp_path / 'out'}"])
    training = importlib.import_module("lightclip.training")
    monkeypatch.setattr(training, "train", raising(KeyError("a bug in the trainer")))
    with pytest.raises(KeyError, match="a bug in the trainer"):
        lightclip.cli.main(
            ["train", "--recipe", "recipes/train/tiny.yaml", f"data.shards={tmp_path}", f"run.out_dir={tmp_path / 'r'}"]
        )


def test_the_process_exits_1_with_the_traceback():
    script = (
        "import sys, pipeline.cli as cli\n"
        "cli._stats = lambda args: 1 / 0\n"
        "sys.exit(cli.main(['stats', 'some/folder']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "ZeroDivisionError" in done.stderr


@dataclass
class Checked:
    rate: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1:
            raise ValueError(f"loss.rate must be in (0, 1], got {self.rate}")


@dataclass
class Outer:
    inner: Checked


def test_a_dataclass_check_in_a_recipe_is_a_config_error_with_its_own_message():
    with pytest.raises(ConfigError) as caught:
        from_dict(Outer, {"inner": {"rate": 2}})
    assert str(caught.value) == "loss.rate must be in (0, 1], got 2.0"
    assert isinstance(caught.value.__cause__, ValueError)
