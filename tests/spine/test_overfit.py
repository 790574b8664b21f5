"""50 steps on one fixed batch must cut every LightCLIP loss term at least in half."""

import pytest
import torch
from spine_fixtures import captions, tiny_config

from lightclip.losses import LossConfig
from lightclip.models import IMAGE_ENCODERS
from lightclip.task import LightCLIP, LightCLIPObjective

TERMS = ("instance", "token", "mlm")


@pytest.mark.parametrize("name", sorted(IMAGE_ENCODERS))
def test_fifty_steps_halve_every_term(name):
    torch.manual_seed(0)
    model = LightCLIP(tiny_config(name, image_size=32)).train()
    objective = LightCLIPObjective(LossConfig(label_mode="one_hot"))
    images, tokens = torch.randn(8, 3, 32, 32), captions(8, seed=1)
    inputs = objective.forward_inputs(model, tokens, seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    history = []
    for _ in range(50):
        terms = objective(model(images, inputs.tokens, **inputs.extra), progress=0.0)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        model.clip.clamp_logit_scale()
        history.append({k: terms[k].item() for k in TERMS})
    model.eval()  # judge the final weights without batch-norm noise from training mode
    with torch.no_grad():
        final = objective(model(images, inputs.tokens, **inputs.extra), progress=0.0)
    for term in TERMS:
        assert final[term].item() <= history[0][term] / 2, (term, history[0][term], final[term].item())
