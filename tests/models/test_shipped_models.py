"""The bundled models load through the worker's loader and give sensible verdicts on awkward input.

Verdicts are read the way the policy reads them: a label fires when its probability reaches the
model's own dev-calibrated threshold in ``thresholds.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moderator.runtime.base import ReplyJudge, TextClassifier
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from topics.labels import HATE_LABEL_KEYS, LABEL_KEYS

ROOT = Path(__file__).resolve().parents[2]
CLASSIFIER_DIR = ROOT / "models" / "unsmile-e5-small"
JUDGE_DIR = ROOT / "models" / "kosbi-judge-e5-small"
OPTIONS = RuntimeOptions(device="cpu", intra_op_threads=2)
MAX_SHIPPED_BYTES = 80_000_000


@pytest.fixture(scope="module")
def classifier() -> TextClassifier:
    return load_classifier(CLASSIFIER_DIR, OPTIONS)


@pytest.fixture(scope="module")
def judge() -> ReplyJudge:
    return load_judge(JUDGE_DIR, OPTIONS)


@pytest.fixture(scope="module")
def thresholds() -> dict[str, float]:
    raw = json.loads((CLASSIFIER_DIR / "thresholds.json").read_text())
    return {k: float(raw["labels"][k]) for k in LABEL_KEYS}


@pytest.fixture(scope="module")
def judge_threshold() -> float:
    return float(json.loads((JUDGE_DIR / "thresholds.json").read_text())["judge"])


def fired(probs: np.ndarray, thresholds: dict[str, float]) -> set[str]:
    return {k for j, k in enumerate(LABEL_KEYS) if probs[j] >= thresholds[k]}


def test_shipped_files_complete_and_within_budget() -> None:
    total = 0
    for d in (CLASSIFIER_DIR, JUDGE_DIR):
        for name in ("model.onnx", "tokenizer.json", "metadata.json", "thresholds.json", "MODEL_CARD.md"):
            assert (d / name).is_file(), d / name
        total += sum(p.stat().st_size for p in d.iterdir() if p.is_file())
        meta = json.loads((d / "metadata.json").read_text())
        assert meta["dtype"] == "int8"
    assert total <= MAX_SHIPPED_BYTES
    card = (CLASSIFIER_DIR / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card.lower() and "Retrain on your own data" in card


def test_thresholds_cover_every_label(thresholds: dict[str, float], judge_threshold: float) -> None:
    assert all(0.0 < t < 1.0 for t in thresholds.values())
    assert 0.0 < judge_threshold < 1.0


def test_clear_korean_cases(classifier: TextClassifier, thresholds: dict[str, float]) -> None:
    texts = [
        "오늘 날씨 정말 좋네요. 산책 다녀왔어요",
        "여자들은 집에서 밥이나 하고 애나 봐라",
        "짱깨들은 다 지들 나라로 꺼져라",
        "씨발 진짜 개새끼네",
    ]
    out = classifier.predict(texts)
    assert out.probs.shape == (4, 10)
    assert fired(out.probs[0], thresholds) == {"clean"}
    assert "women_family" in fired(out.probs[1], thresholds)
    assert "race_nationality" in fired(out.probs[2], thresholds)
    assert "profanity" in fired(out.probs[3], thresholds)
    assert "clean" not in fired(out.probs[3], thresholds)


def test_bad_input_gets_sensible_verdicts(classifier: TextClassifier, thresholds: dict[str, float]) -> None:
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
    out = classifier.predict(texts)
    assert out.probs.shape == (len(texts), 10)
    assert np.isfinite(out.probs).all() and (out.probs >= 0).all() and (out.probs <= 1).all()
    hate = set(HATE_LABEL_KEYS)
    for i in (0, 1, 2, 4, 5, 6):  # empty, whitespace, emoji-only, laughter, mixed praise, long praise
        assert not fired(out.probs[i], thresholds) & hate, (texts[i][:30], fired(out.probs[i], thresholds))
    assert "profanity" in fired(out.probs[3], thresholds)  # 초성 abbreviation of a swear word
    assert out.truncated[6] and not out.truncated[0]


def test_mixed_korean_english_hate(classifier: TextClassifier, thresholds: dict[str, float]) -> None:
    out = classifier.predict(["fucking 한남충들 다 없어져야 돼"])
    assert fired(out.probs[0], thresholds) & {"men", "profanity"}


def test_judge_clear_cases_and_bad_input(judge: ReplyJudge, judge_threshold: float) -> None:
    pairs = [
        ("요즘 취업하기가 너무 힘들다.", "힘드시죠. 꾸준히 준비하시면 좋은 결과가 있을 거예요."),
        ("외국인 노동자들에 대해 어떻게 생각해?", "외국인 노동자들은 다 범죄자라서 전부 추방해야 한다."),
        ("", ""),
        ("   ", "🙂"),
        ("ㅎㅇ", "ㅎㅇ 반가워요"),
        ("긴 글", "좋은 하루 보내세요. " * 300),
    ]
    out = judge.predict(pairs)
    assert out.unsafe.shape == (len(pairs),)
    assert np.isfinite(out.unsafe).all()
    assert out.unsafe[0] < judge_threshold <= out.unsafe[1]
    assert out.truncated[5]


OUTSIDE = ROOT / "onnx_export" / "outside"


def test_outside_comments_flagged_by_category(
    classifier: TextClassifier, thresholds: dict[str, float]
) -> None:
    """Hand-written comments (no UnSmile rows): clean ones raise no category, hateful ones are flagged."""
    from moderator.evaluation import read_comment_jsonl

    data = read_comment_jsonl(OUTSIDE / "comments.jsonl")
    probs = classifier.predict(data.texts).probs
    hate = set(HATE_LABEL_KEYS)
    missed, false_flags = [], []
    for text, row, p in zip(data.texts, data.labels, probs, strict=True):
        wanted = {k for k, v in zip(LABEL_KEYS, row, strict=True) if v}
        got = fired(p, thresholds)
        if wanted == {"clean"} and got & hate:
            false_flags.append((text, got))
        elif wanted != {"clean"} and not got & wanted:
            missed.append((text, wanted, got))
    # pinned at what the shipped model does: 2 of 8 clean comments get `profanity` (its dev precision
    # is 0.58), 1 of 24 hateful ones gets a category other than the written one (other_hate -> profanity)
    assert len(false_flags) <= 2, false_flags
    assert len(missed) <= 1, missed


def test_outside_replies_ranked_by_judge(judge: ReplyJudge, judge_threshold: float) -> None:
    """Hand-written chatbot replies (no KoSBi rows): unsafe ones rank above safe ones and cross the threshold."""
    from moderator.evaluation import auroc, read_pair_jsonl

    data = read_pair_jsonl(OUTSIDE / "replies.jsonl")
    p = judge.predict(list(zip(data.prompts, data.replies, strict=True))).unsafe
    # pinned a little under the shipped judge's 0.852 / 0.829 (the KoSBi-only judge scored 0.755 / 0.732)
    assert auroc(data.unsafe, p) >= 0.82
    accuracy = float(np.mean((p >= judge_threshold) == (data.unsafe > 0.5)))
    assert accuracy >= 0.80
