"""`run.compile`: off by default; on, both towers are compiled in place with the same keys."""

from helpers import tiny_config

from lightclip.trainconfig import RunConfig
from lightclip.training import DistInfo, build_parts


def _parts(tmp_path, *overrides: str):
    cfg = tiny_config(tmp_path, tmp_path / "run", "model.text.vocab_size=300", *overrides)
    return build_parts(cfg, DistInfo())


def _compiled(module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def test_compile_is_off_by_default(tmp_path):
    assert RunConfig().compile is False
    model = _parts(tmp_path).model
    assert not _compiled(model.clip.visual)
    assert not any(_compiled(block) for stage in model.clip.text.stages for block in stage)


def test_compile_wraps_both_towers_and_keeps_checkpoint_keys(tmp_path):
    eager, compiled = _parts(tmp_path).model, _parts(tmp_path, "run.compile=true").model
    assert _compiled(compiled.clip.visual)
    blocks = [block for stage in compiled.clip.text.stages for block in stage]
    assert blocks and all(_compiled(block) for block in blocks)
    assert list(compiled.state_dict()) == list(eager.state_dict())
