"""Special-token ids come from the tokenizer; configs that still name them load when they agree."""

import dataclasses

import pytest
from spine_fixtures import tiny_config

from lightclip.checkpoint import CheckpointError, model_config_of
from lightclip.modelconfig import ModelConfig
from lightclip.trainconfig import TrainConfig
from pipeline.base.configs import ConfigError, from_dict
from pipeline.base.tokenizer import SPECIAL_IDS, CaptionTokenizer, train_tokenizer

OLD_IDS = {"text": {"pad_id": 0, "eos_id": 3}, "mask_id": 1, "sos_id": 2}  # what older configs wrote


def stored(**changes) -> dict:
    """A model config as an older checkpoint stored it (the four id keys included)."""
    data = dataclasses.asdict(tiny_config())
    data.update({k: v for k, v in OLD_IDS.items() if k != "text"})
    data["text"].update(OLD_IDS["text"])
    for key, value in changes.items():
        (data["text"] if key in OLD_IDS["text"] else data)[key] = value
    return data


def test_the_tokenizer_holds_the_ids():
    tokenizer = CaptionTokenizer(train_tokenizer(["a red circle", "a blue square"] * 5, 300, 1), 8)
    assert tokenizer.special_ids == SPECIAL_IDS and SPECIAL_IDS.all == (0, 1, 2, 3)
    row = tokenizer.encode(["a red circle"])[0].tolist()
    assert row[0] == SPECIAL_IDS.sos and SPECIAL_IDS.eos in row and row[-1] == SPECIAL_IDS.pad


def test_an_older_config_with_the_tokenizer_ids_loads_as_a_new_one():
    assert from_dict(ModelConfig, stored(), "model") == tiny_config()
    assert model_config_of({"config": {"model": stored()}}) == tiny_config()
    recipe = {"model": stored(), "data": {"shards": "x"}}
    assert from_dict(TrainConfig, recipe).model == tiny_config()


@pytest.mark.parametrize("key", ["pad_id", "eos_id", "mask_id", "sos_id"])
def test_an_id_other_than_the_tokenizer_s_is_refused_naming_the_key(key):
    named = f"model.text.{key}" if key in OLD_IDS["text"] else f"model.{key}"
    with pytest.raises(ConfigError, match=rf"^{named}=7: special-token ids come from the tokenizer") as err:
        from_dict(ModelConfig, stored(**{key: 7}), "model")
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match=named):
        model_config_of({"config": {"model": stored(**{key: 7})}})
