"""The inference model in open_clip's layout (``python -m lightclip export --format open_clip``).

An open_clip export directory holds (the only place that knows these names)::

    open_clip_config.json         {"model_cfg", "preprocess_cfg", "lightclip"}: open_clip's
                                  ``local-dir:`` / Hugging Face Hub layout
    <name>.json                   the model config alone, for ``open_clip.add_model_config(DIR)``
    open_clip_model.safetensors   weights under open_clip's ``CustomTextCLIP`` names
    tokenizer.json, tokenizer_config.json, special_tokens_map.json
                                  the caption tokenizer as a Hugging Face fast tokenizer

How each part maps (``lightclip.interop.openclip_load.load_open_clip`` applies the two
settings open_clip's JSON config cannot carry):

- image tower: open_clip's ``TimmModel`` (avg pool, linear projection with bias). resnet18 and
  mobilenet_v2 are timm's ``resnet18`` / ``mobilenetv2_100``, module for module: plain open_clip
  builds them. swin_nano has no timm name (see :mod:`lightclip.interop.timm_trunks`): the config
  names ``lightclip_swin_nano_<size>``, which exists once lightclip registers it with timm.
- text tower: open_clip's ``TextTransformer`` (``custom_text``), the same pre-LN blocks, final
  layer norm and bias-free projection, pooled at the first [EOS] (``pool_type: eos``). A causal
  tower (``model.text.causal: true``) matches in plain open_clip. A bidirectional one (the
  default) needs the padding mask, which ``TextTransformer(use_pad_mask=True)`` has but
  open_clip 3.3's ``CLIPTextCfg`` does not pass: set ``model.text.use_pad_mask = True`` after
  loading. Mean pooling (the demo recipes) has no open_clip equivalent: refused.
- tokenizer: the same BPE with [SOS] ... [EOS] [PAD]... at the same context length; open_clip's
  ``HFTokenizer`` lower-cases (``clean: lower``) and also cleans text first (ftfy, HTML
  unescape, runs of whitespace to one space), so ids differ from this project's only for text
  that cleaning changes.
- preprocessing: resize the shorter side (bicubic), centre crop, CLIP mean/std: open_clip's
  ``resize_mode: shortest`` default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, normalizers, processors

from lightclip.export_error import ExportError
from lightclip.interop.timm_trunks import needs_registration, timm_name, trunk_state_keys
from lightclip.models import CLIP, ModelConfig
from pipeline.base.photometric import CLIP_MEAN, CLIP_STD
from pipeline.base.tokenizer import (
    EOS,
    EOS_ID,
    MASK,
    PAD,
    SOS,
    SOS_ID,
    SPECIAL_IDS,
    TOKENIZER_FILE,
    CaptionTokenizer,
)

OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"
FORMAT_VERSION = 1


class OpenClipExportError(ExportError):
    """The model has a part open_clip cannot express."""


@dataclass(frozen=True)
class OpenClipSettings:
    """What open_clip's JSON cannot say, read back by the loader from ``open_clip_config.json``."""

    timm_model_name: str
    register_trunk: bool  # the timm name exists only after lightclip registers it
    text_padding_mask: bool  # set model.text.use_pad_mask = True after loading


def default_name(config: ModelConfig) -> str:
    return f"lightclip-{config.image_encoder}-{config.image_size}"


def check_expressible(config: ModelConfig) -> None:
    """Refuse what open_clip has no equivalent for (one line naming the setting)."""
    if config.text.pooling != "eos":
        raise OpenClipExportError(
            f"model.text.pooling={config.text.pooling!r}: open_clip's text tower pools at a token "
            "(eos, argmax, first, last), never a mean over the caption; export --format lightclip instead"
        )


def model_config(config: ModelConfig, logit_scale: float, tokenizer_dir: Path) -> dict:
    """open_clip's ``model_cfg`` for ``config`` (a ``CustomTextCLIP``). ``tokenizer_dir``: where
    ``open_clip.get_tokenizer(name)`` finds the tokenizer (a ``local-dir:`` load reads its own)."""
    text = config.text
    return {
        "embed_dim": config.embed_dim,
        "custom_text": True,
        "init_logit_scale": logit_scale,
        "vision_cfg": {
            "image_size": config.image_size,
            "timm_model_name": timm_name(config.image_encoder, config.image_size),
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "linear",
            "timm_proj_bias": True,
        },
        "text_cfg": {
            "context_length": text.context_length,
            "vocab_size": text.vocab_size,
            "width": text.width,
            "heads": text.heads,
            "layers": text.layers,
            "mlp_ratio": text.mlp_ratio,
            "no_causal_mask": not text.causal,
            "pad_id": SPECIAL_IDS.pad,
            "eos_id": SPECIAL_IDS.eos,
            "pool_type": "eos",
            "proj_bias": False,
            "hf_tokenizer_name": str(tokenizer_dir),
            "tokenizer_kwargs": {"clean": "lower"},
        },
    }


def preprocess_config(config: ModelConfig) -> dict:
    return {
        "size": config.image_size,
        "mode": "RGB",
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }


def settings_of(config: ModelConfig) -> OpenClipSettings:
    name = timm_name(config.image_encoder, config.image_size)
    return OpenClipSettings(name, needs_registration(name), text_padding_mask=not config.text.causal)


# ------------------------------------------------------------------ weights


def _text_block_key(key: str, per_stage: int) -> str:
    """``stages.S.B.<rest>`` -> ``transformer.resblocks.<S*per_stage+B>.<open_clip rest>``."""
    _, stage, block, rest = key.split(".", 3)
    rest = {
        "attn.qkv.weight": "attn.in_proj_weight",
        "attn.qkv.bias": "attn.in_proj_bias",
        "attn.out.weight": "attn.out_proj.weight",
        "attn.out.bias": "attn.out_proj.bias",
        "mlp.0.weight": "mlp.c_fc.weight",
        "mlp.0.bias": "mlp.c_fc.bias",
        "mlp.2.weight": "mlp.c_proj.weight",
        "mlp.2.bias": "mlp.c_proj.bias",
    }.get(rest, rest)
    return f"transformer.resblocks.{int(stage) * per_stage + int(block)}.{rest}"


def text_state(model: CLIP) -> dict[str, torch.Tensor]:
    """The text tower under ``text.*`` (projection transposed: open_clip stores (W, D))."""
    per_stage = model.config.text.layers // model.config.text.stages
    out = {}
    for key, value in model.text.state_dict().items():
        name = _text_block_key(key, per_stage) if key.startswith("stages.") else key
        out[f"text.{name}"] = value
    out["text.text_projection"] = model.text_projection.weight.t()
    return out


def image_state(model: CLIP) -> dict[str, torch.Tensor]:
    """The image tower under ``visual.trunk.*`` (timm's names, matched in module order) and
    ``visual.head.proj.*``."""
    config = model.config
    ours = model.visual.state_dict()
    if needs_registration(timm_name(config.image_encoder, config.image_size)):
        out = {f"visual.trunk.encoder.{key}": value for key, value in ours.items()}
    else:
        out = _zip_by_order(ours, trunk_state_keys(config.image_encoder, config.image_size))
    out["visual.head.proj.weight"] = model.image_projection.weight
    out["visual.head.proj.bias"] = model.image_projection.bias
    return out


def _zip_by_order(ours: dict[str, torch.Tensor], theirs: list[str]) -> dict[str, torch.Tensor]:
    """Pair our tensors with timm's keys in module order, checking each leaf name."""
    if len(ours) != len(theirs):
        raise OpenClipExportError(f"image tower: {len(ours)} tensors here, {len(theirs)} in timm's model")
    out = {}
    for (key, value), target in zip(ours.items(), theirs):
        if key.rsplit(".", 1)[-1] != target.rsplit(".", 1)[-1]:
            raise OpenClipExportError(f"image tower: {key} does not line up with timm's {target}")
        out[f"visual.trunk.{target}"] = value
    return out


def open_clip_state(model: CLIP) -> dict[str, torch.Tensor]:
    """Every tensor of the inference model under open_clip's ``CustomTextCLIP`` names."""
    scale = model.logit_scale.detach().clamp(max=torch.log(torch.tensor(model.config.logit_scale_max)))
    state = {**image_state(model), **text_state(model), "logit_scale": scale}
    return {key: value.detach().cpu().float().contiguous() for key, value in state.items()}


# ------------------------------------------------------------------ tokenizer


def hf_tokenizer_files(tokenizer: CaptionTokenizer, directory: Path) -> None:
    """The caption tokenizer as a Hugging Face fast tokenizer: lower-casing normaliser and
    [SOS] ... [EOS] template added; ``transformers`` pads and truncates to the context."""
    hf = Tokenizer.from_str(tokenizer.tokenizer.to_str())
    hf.normalizer = normalizers.Lowercase()
    hf.post_processor = processors.TemplateProcessing(
        single=f"{SOS} $A {EOS}", special_tokens=[(SOS, SOS_ID), (EOS, EOS_ID)]
    )
    hf.no_padding()
    hf.no_truncation()
    hf.save(str(directory / TOKENIZER_FILE))
    special = {"pad_token": PAD, "mask_token": MASK, "bos_token": SOS, "eos_token": EOS}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": tokenizer.context_length,
        "padding_side": "right",
        "truncation_side": "right",
        **special,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


# ------------------------------------------------------------------ the directory


def write_open_clip(model: CLIP, tokenizer: CaptionTokenizer, work: Path, final_dir: Path, name: str = "") -> None:
    """Write the open_clip files of ``model`` into ``work`` (published later as ``final_dir``,
    whose absolute path the ``add_model_config`` config names as its tokenizer)."""
    config = model.config
    check_expressible(config)
    name = name or default_name(config)
    model_cfg = model_config(config, float(model.logit_scale.detach()), final_dir.resolve())
    settings = settings_of(config)
    save_file(open_clip_state(model), str(work / OPEN_CLIP_WEIGHTS), metadata={"format": "open_clip"})
    hf_tokenizer_files(tokenizer, work)
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "image_encoder": config.image_encoder,
        "settings": settings.__dict__,
    }
    payload = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_config(config), "lightclip": meta}
    (work / OPEN_CLIP_CONFIG).write_text(json.dumps(payload, indent=2) + "\n")
    (work / f"{name}.json").write_text(json.dumps(model_cfg, indent=2) + "\n")


def read_settings(directory: str | Path) -> tuple[str, OpenClipSettings]:
    """The model name and loader settings of an open_clip export directory."""
    path = Path(directory) / OPEN_CLIP_CONFIG
    try:
        meta = json.loads(path.read_text())["lightclip"]
        return meta["name"], OpenClipSettings(**meta["settings"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise OpenClipExportError(f"{path}: not a lightclip open_clip export ({type(err).__name__}: {err})") from err
