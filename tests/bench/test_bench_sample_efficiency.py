"""The sample-efficiency benchmark's reference models: its own text tower and the toolkit's swapped in."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_sample_efficiency as bench  # noqa: E402

CAPTIONS = ["a red circle on grass", "two blue squares", "a small green star at night"]


def test_word_vocab_pads_and_marks_unknown_words():
    vocab = bench.WordVocab(CAPTIONS, length=6)
    ids = vocab.encode(["a red unicorn"])
    assert ids.shape == (1, 6) and ids[0, 2] == 1 and (ids[0, 3:] == 0).all() and (ids[0, :2] > 1).all()


@pytest.mark.parametrize("text", ["own", "toolkit", "toolkit:2x32:torch", "toolkit:4x64:embedding"])
def test_reference_text_towers_encode_words(text):
    torch.manual_seed(0)
    model = bench.reference_model(bench.WordVocab(CAPTIONS, length=8), text).eval()
    with torch.no_grad():
        out = model.encode_words(model.vocab.encode(CAPTIONS))
    assert out.shape == (3, 128) and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_swapped_tower_init_modes():
    vocab = bench.WordVocab(CAPTIONS * 50, length=8)
    stds = {
        init: float(bench.reference_model(vocab, f"toolkit:4x64:{init}").tower.token_embedding.weight.detach().std())
        for init in ("toolkit", "torch", "embedding", "linear")
    }
    assert stds["toolkit"] < 0.05 and stds["linear"] < 0.05 and stds["torch"] > 0.5 and stds["embedding"] > 0.5


def test_bad_reference_text_is_refused():
    with pytest.raises(SystemExit, match="LAYERSxWIDTH"):
        bench.reference_model(bench.WordVocab(CAPTIONS), "toolkit:wide")
