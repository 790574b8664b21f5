"""``lightclip train --help`` and recipe mistakes answer before torch is imported: the training
configs live in torch-free modules, re-exported from the old ones."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPE = "recipes/train/swin_nano.yaml"


def run_main(argv: list[str]) -> tuple[list[str], str, str, float]:
    """(code, torch loaded, timm loaded), stdout and stderr of ``lightclip ARGV``."""
    code = (
        "import sys; from lightclip.cli import main\n"
        f"try: code = main({argv!r})\nexcept SystemExit as stop: code = stop.code\n"
        "print(code, 'torch' in sys.modules, 'timm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=100)
    return result.stdout.split()[-3:], result.stdout, result.stderr


@pytest.mark.timeout(120)
def test_train_help_lists_the_keys_without_torch():
    (code, torch_loaded, timm_loaded), output, errors = run_main(["train", "--help"])
    assert (code, torch_loaded, timm_loaded) == ("0", "False", "False"), output + errors
    assert "model.image_encoder" in output and "loss.token.temperature" in output and "data.image.size" in output


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "override, named",
    [
        ("model.image_encoder=vit", "model.image_encoder"),
        ("optim.batch_size=0", "optim.batch_size"),
        ("loss.token.temperature=0", "loss.token.temperature"),
        ("loss.masking.batch_fraction=2", "loss.masking.batch_fraction"),
        ("data.tar.max_member_mb=-1", "data.tar.max_member_mb"),
        ("data.tar.max_member_mb=0", "data.tar.max_member_mb"),
    ],
)
def test_recipe_mistakes_are_one_line_before_torch(override, named, tmp_path):
    argv = ["train", "--recipe", RECIPE, f"data.shards={tmp_path}", f"run.out_dir={tmp_path / 'run'}", override]
    (code, torch_loaded, _), _, errors = run_main(argv)
    assert (code, torch_loaded) == ("2", "False"), errors
    lines = errors.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and lines[0].startswith("lightclip train:"), errors
    assert not (tmp_path / "run").exists()


def test_configs_are_re_exported_from_their_old_modules():
    from lightclip import lossconfig, modelconfig
    from lightclip.losses import LossConfig, MaskingConfig, TokenLossConfig
    from lightclip.models import IMAGE_ENCODERS, FusionConfig, ModelConfig, TextConfig
    from lightclip.models.clip import check_token_stage
    from pipeline.base import streamconfig
    from pipeline.base.augment_image import MoCoConfig
    from pipeline.stream import StreamConfig

    assert (ModelConfig, TextConfig, FusionConfig) == (
        modelconfig.ModelConfig,
        modelconfig.TextConfig,
        modelconfig.FusionConfig,
    )
    assert (LossConfig, MaskingConfig, TokenLossConfig) == (
        lossconfig.LossConfig,
        lossconfig.MaskingConfig,
        lossconfig.TokenLossConfig,
    )
    assert (StreamConfig, MoCoConfig) == (streamconfig.StreamConfig, streamconfig.MoCoConfig)
    assert check_token_stage is modelconfig.check_token_stage
    assert sorted(IMAGE_ENCODERS) == sorted(modelconfig.IMAGE_ENCODER_NAMES)


def test_a_stored_model_config_dict_still_loads():
    """Checkpoints keep the config as a plain dict: the moved dataclass reads it unchanged."""
    from lightclip.checkpoint import model_config_of
    from lightclip.models import ModelConfig

    stored = dataclasses.asdict(ModelConfig(image_encoder="resnet18", image_size=64))
    stored["text"]["vocab_size"] = 300
    config = model_config_of({"config": {"model": stored}})
    assert isinstance(config, ModelConfig) and config.image_size == 64 and config.text.vocab_size == 300
