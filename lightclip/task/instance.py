"""The instance term: symmetric InfoNCE of the global batch with scheduled soft labels (eqs. 3-9)."""

from __future__ import annotations

from typing import Any

import torch

from lightclip.lossconfig import LossConfig
from lightclip.losses.distributed import gather_embeddings
from lightclip.losses.instance import LabelMode, instance_loss, label_mode_at
from lightclip.task.term import Term


class InstanceTerm(Term):
    """``instance`` (the weighted one) and ``instance_onehot``: detached, CLIP's one-hot cross
    entropy in every label mode, so that curves stay comparable when the label mode changes."""

    name = "instance"
    outputs = ("image_embeds", "text_embeds", "logit_scale")

    @classmethod
    def weight(cls, config: LossConfig) -> float:
        return config.instance_weight

    def label_mode(self, progress: float) -> LabelMode:
        cfg = self.config
        return cfg.label_mode or label_mode_at(progress, cfg.r1, cfg.r2)

    def schedule_metrics(self, progress: float) -> dict[str, Any]:
        return {"label_mode": self.label_mode(progress)}

    def loss(self, outputs: dict[str, Any], progress: float) -> dict[str, torch.Tensor]:
        cfg = self.config
        image, text = outputs["image_embeds"], outputs["text_embeds"]
        gathered = {
            "all_image_embeds": gather_embeddings(image, self.rank, self.world_size),
            "all_text_embeds": gather_embeddings(text, self.rank, self.world_size),
            "rank": self.rank,
        }
        mode = self.label_mode(progress)
        scale = outputs["logit_scale"]
        terms = {
            "instance": instance_loss(
                image, text, scale, mode, cfg.alpha, importance_temperature=cfg.importance_temperature, **gathered
            )
        }
        if mode == "one_hot":
            terms["instance_onehot"] = terms["instance"].detach()
            return terms
        with torch.no_grad():
            detached = {k: v.detach() if torch.is_tensor(v) else v for k, v in gathered.items()}
            terms["instance_onehot"] = instance_loss(
                image.detach(), text.detach(), scale.detach(), "one_hot", **detached
            )
        return terms
