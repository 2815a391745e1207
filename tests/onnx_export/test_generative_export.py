"""Generative classifier: constrained line decoding equals a PyTorch reference, and parses its own output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moderator.runtime.generative_classifier import (
    END,
    UNSMILE_GEMMA_LINES,
    GenerativeClassifier,
    parse_answer,
)
from moderator.runtime.loader import load_classifier
from moderator.runtime.metadata import read_metadata
from moderator.runtime.options import RuntimeOptions
from onnx_export.cli import main as export_cli
from tests.fixtures.models import build_decoder_checkpoint
from topics.labels import LABEL_KEYS

TEXTS = [
    "너 같은 놈은 그냥 꺼져라",
    "hello",
    "경상도 사람들은 다 그렇지 뭐",
    "이 식당 김치찌개 맛집이네 " * 3,
    "노인들은 집에나 있어라",
    "긴 댓글 " * 200,
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("generative")
    ckpt = build_decoder_checkpoint(root / "ckpt", architecture="gemma2", seed=21)
    out = root / "onnx"
    assert export_cli(["generative-classifier", str(ckpt), str(out), "--max-length", "256"]) == 0
    return ckpt, out


def reference_decode(ckpt: Path, model: GenerativeClassifier, text: str) -> tuple[list[str], np.ndarray]:
    """The same constrained line-greedy decode, in PyTorch, full sequences, no cache."""
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(ckpt, attn_implementation="eager").eval()
    (suffix,), _ = model.prompt.encode_values([{"text": text}])
    context = [*model.prompt.prefix_ids, *suffix]
    scores = np.zeros(len(LABEL_KEYS))
    chosen: list[str] = []
    options = model.first
    with torch.inference_mode():
        while True:
            allowed = [o for o in options if o.line not in chosen]
            totals = []
            for option in allowed:
                seq = torch.tensor([[*context, *option.ids]])
                lp = torch.log_softmax(lm(input_ids=seq).logits[0].double(), dim=-1)
                start = len(context) - 1
                totals.append(sum(lp[start + j, t].item() for j, t in enumerate(option.ids)))
            probs = np.exp(np.asarray(totals) - max(totals))
            probs /= probs.sum()
            for option, p in zip(allowed, probs, strict=True):
                if option.key != END:
                    scores[LABEL_KEYS.index(option.key)] = max(scores[LABEL_KEYS.index(option.key)], p)
            best = allowed[int(np.argmax(probs))]
            if best.key in (END, "clean"):
                break
            chosen.append(best.line)
            context += best.ids
            options = model.later
    return chosen, scores


@pytest.mark.slow
def test_decoding_matches_pytorch_and_parses_its_own_labels(exported: tuple[Path, Path]) -> None:
    ckpt, out = exported
    meta = read_metadata(out)
    assert meta.kind == "generative-classifier" and meta.validation.max_abs_diff < 1e-4
    model = load_classifier(out, RuntimeOptions(device="cpu", max_batch_tokens=300, max_batch_rows=2))
    assert isinstance(model, GenerativeClassifier)
    results, truncated, _, _ = model.generate(TEXTS)
    assert truncated == [False] * 5 + [True]
    for text, result in zip(TEXTS[:3], results[:3], strict=True):
        lines, scores = reference_decode(ckpt, model, text)
        assert result.answer == "Hate Speech: " + "\n".join(lines or ["None"]) + "\n"
        np.testing.assert_allclose(result.scores, scores, atol=1e-4)
    for result in results:
        assert parse_answer(result.answer, UNSMILE_GEMMA_LINES) == result.labels
        assert result.labels  # a category, or "clean" for None
    probs = model.predict(TEXTS).probs
    np.testing.assert_allclose(probs, np.stack([r.scores for r in results]), atol=1e-5)
    assert (probs[:, LABEL_KEYS.index("profanity")] == 0).all()
    assert ((probs >= 0) & (probs <= 1)).all()


def test_parse_answer() -> None:
    lines = UNSMILE_GEMMA_LINES
    assert parse_answer("Hate Speech: Men\nRegion\n", lines) == ("men", "region")
    assert parse_answer("Hate Speech: None\n", lines) == ("clean",)
    assert parse_answer("Hate Speech: Other Hate Speech\nMen\nMen\nGibberish\n", lines) == (
        "other_hate",
        "men",
    )
    assert parse_answer("LGBTQ+\nRace/Nationality", lines) == ("lgbtq", "race_nationality")
