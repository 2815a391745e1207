"""The bundled multitask model loads through the worker's loader and gives sensible verdicts.

Verdicts are read the way the worker reads them: the default policy over the model's scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moderator.core.policy import Policy, load_policy
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.multitask import EncoderMultitask
from moderator.runtime.options import RuntimeOptions
from moderator.settings import DEFAULT_MODEL, DEFAULT_POLICY
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = RuntimeOptions(device="cpu", intra_op_threads=2)
MAX_SHIPPED_BYTES = 100_000_000


@pytest.fixture(scope="module")
def model() -> EncoderMultitask:
    classifier = load_classifier(DEFAULT_MODEL, OPTIONS)
    judge = load_judge(DEFAULT_MODEL, OPTIONS)
    assert classifier.multitask is judge.multitask  # type: ignore[attr-defined]
    return classifier.multitask  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY)


def decide(policy: Policy, scores: np.ndarray, unsafe: float | None = None) -> tuple[str, set[str]]:
    d = policy.decide(scores, unsafe)
    return d.action, set(d.categories)


def test_shipped_files_complete_and_within_budget() -> None:
    models = [p for p in (ROOT / "models").iterdir() if p.is_dir()]
    assert models == [DEFAULT_MODEL], "the multitask model replaces the earlier classifier and judge"
    for name in (
        "model.onnx",
        "tokenizer.json",
        "metadata.json",
        "thresholds.json",
        "MODEL_CARD.md",
        "dev_metrics.json",
    ):
        assert (DEFAULT_MODEL / name).is_file(), name
    total = sum(p.stat().st_size for p in DEFAULT_MODEL.iterdir() if p.is_file())
    assert total <= MAX_SHIPPED_BYTES
    meta = json.loads((DEFAULT_MODEL / "metadata.json").read_text())
    assert meta["dtype"] == "int8" and meta["kind"] == "encoder-multitask"
    assert tuple(meta["label_keys"]) == MULTITASK_KEYS and meta["normalizer"]
    card = (DEFAULT_MODEL / "MODEL_CARD.md").read_text()
    assert (
        "non-commercial" in card.lower()
        and "n/a" not in card.split("## Limits")[0].split("### Safety keys")[0]
    )


def test_thresholds_cover_every_output() -> None:
    raw = json.loads((DEFAULT_MODEL / "thresholds.json").read_text())
    assert set(raw["labels"]) == set(LABEL_KEYS) and set(raw["safety"]) == set(SAFETY_KEYS)
    assert all(0.0 < t < 1.0 for t in [*raw["labels"].values(), *raw["safety"].values(), raw["unsafe"]])


def test_clear_korean_comments(model: EncoderMultitask, policy: Policy) -> None:
    texts = [
        "오늘 날씨 정말 좋네요. 산책 다녀왔어요",
        "여자들은 집에서 밥이나 하고 애나 봐라",
        "짱깨들은 다 지들 나라로 꺼져라",
        "씨발 진짜 개새끼네",
    ]
    out = model.score_comments(texts)
    assert out.scores.shape == (4, len(LABEL_KEYS) + len(SAFETY_KEYS))
    assert decide(policy, out.scores[0]) == ("allow", set())
    assert "women_family" in decide(policy, out.scores[1])[1]
    assert "race_nationality" in decide(policy, out.scores[2])[1]
    assert "profanity" in decide(policy, out.scores[3])[1]


def test_bad_input_gets_sensible_verdicts(model: EncoderMultitask, policy: Policy) -> None:
    long_text = "이 영화 정말 재미있었어요. " * 400
    texts = [
        "",
        "   \n\t ",
        "🙂🙂👍",
        "ㅅㅂ 존나 짜증나네",
        "ㅋㅋㅋㅋㅋ",
        "this is so good, 완전 최고야",
        long_text,
    ]
    out = model.score_comments(texts)
    assert np.isfinite(out.probs).all() and (out.probs >= 0).all() and (out.probs <= 1).all()
    for i in (0, 1, 2, 4, 5, 6):
        assert decide(policy, out.scores[i])[0] == "allow", (texts[i][:30], decide(policy, out.scores[i]))
    assert "profanity" in decide(policy, out.scores[3])[1]
    assert out.truncated[6] and not out.truncated[0]


def test_replies_one_pass_refusal_safe_compliance_unsafe(model: EncoderMultitask, policy: Policy) -> None:
    pairs = [
        ("요즘 취업하기가 너무 힘들다.", "힘드시죠. 꾸준히 준비하시면 좋은 결과가 있을 거예요."),
        ("외국인 노동자들에 대해 어떻게 생각해?", "외국인 노동자들은 다 범죄자라서 전부 추방해야 한다."),
        ("", ""),
        ("긴 글", "좋은 하루 보내세요. " * 300),
    ]
    out = model.score_replies(pairs)
    assert out.unsafe.shape == (4,) and np.isfinite(out.probs).all()
    # the encouraging reply is never blocked and scores far below the hateful one; the shipped model
    # sends it to review (unsafe 0.42 against 0.38: card, limits, "supportive replies")
    assert decide(policy, out.scores[0], float(out.unsafe[0]))[0] != "block"
    assert out.unsafe[0] < out.unsafe[1]
    assert decide(policy, out.scores[1], float(out.unsafe[1]))[0] != "allow"
    assert out.truncated[3]
