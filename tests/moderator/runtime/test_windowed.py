"""Classifier and judge read in windows on tiny real models: pooling, truncation, models without windows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from moderator.runtime.base import ClassifierOutput, ReplyJudge, TextClassifier
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.windowed import WindowedClassifier, WindowedJudge, WindowedMultitask
from moderator.runtime.windows import WindowConfig
from topics import LABEL_KEYS

OPTIONS = RuntimeOptions(device="cpu", intra_op_threads=1)
LONG = " ".join(f"단어{i} 문장이 길게 이어집니다" for i in range(120))


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir: Path) -> TextClassifier:
    return load_classifier(tiny_classifier_dir, OPTIONS)


@pytest.fixture(scope="module")
def judge(tiny_judge_dir: Path) -> ReplyJudge:
    return load_judge(tiny_judge_dir, OPTIONS)


def test_one_window_texts_score_as_the_model_does(classifier: TextClassifier) -> None:
    texts = ["안녕하세요", "좋은 하루 보내세요"]
    scored = WindowedClassifier(classifier).score(texts)
    np.testing.assert_allclose(scored.scores, classifier.predict(texts).probs, rtol=1e-6)
    assert scored.windows == 2 and scored.spans == [{}, {}] and scored.truncated == [False, False]


def test_long_text_pools_its_windows(classifier: TextClassifier) -> None:
    scorer = WindowedClassifier(classifier, WindowConfig(max_windows=500, tokens=16))
    assert scorer.windower is not None
    split = scorer.windower.split([LONG])
    rows = classifier.predict(split.rows).probs
    scored = scorer.score([LONG, "짧은 글"])
    assert scored.windows == len(split.rows) + 1
    clean = rows.shape[1] - 1
    np.testing.assert_allclose(scored.scores[0, :clean], rows[:, :clean].max(axis=0), rtol=1e-6)
    assert scored.scores[0, clean] == pytest.approx(rows[:, clean].min())
    assert set(scored.spans[0]) == {
        "women_family",
        "men",
        "lgbtq",
        "race_nationality",
        "age",
        "region",
        "religion",
        "other_hate",
        "profanity",
    }
    assert scored.truncated == [False, False]
    capped = WindowedClassifier(classifier, WindowConfig(max_windows=2, tokens=16)).score([LONG])
    assert capped.truncated == [True] and capped.windows == 2


def test_judge_long_prompt_is_context_not_an_unread_reply(judge: ReplyJudge) -> None:
    scorer = WindowedJudge(judge, WindowConfig(max_windows=500))
    scored = scorer.score([(LONG, "네, 알겠습니다."), ("질문", LONG)])
    assert judge.predict([(LONG, "네, 알겠습니다.")]).truncated == [True]  # the model cut the prompt
    assert scored.truncated == [False, False]
    assert scored.spans[0] == {} and "unsafe" in scored.spans[1]
    assert WindowedJudge(judge, WindowConfig(max_windows=1)).score([("질문", LONG)]).truncated == [True]


class WholeTextClassifier:
    """A real model behind an interface with no tokenizer (like a generative classifier)."""

    def __init__(self, inner: TextClassifier) -> None:
        self.inner, self.model_id, self.provider = inner, inner.model_id, inner.provider

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        return self.inner.predict(texts)


def test_model_without_a_tokenizer_is_called_on_whole_texts(classifier: TextClassifier) -> None:
    scorer = WindowedClassifier(WholeTextClassifier(classifier))
    assert scorer.windower is None
    scored = scorer.score([LONG])
    assert scored.windows == 1 and scored.truncated == [True]  # the model's own cut, for the policy


class OnePassModel:
    """A model shaped like the multitask encoder (``score_comments``/``score_replies``, 11 columns:
    the ten labels then ``unsafe``), built from the tiny real classifier and judge."""

    def __init__(self, classifier: TextClassifier, judge: ReplyJudge) -> None:
        self.classifier, self.judge = classifier, judge
        self.encoder = classifier.encoder  # type: ignore[attr-defined]
        self.calls: list[int] = []

    def _out(self, probs: np.ndarray, unsafe: np.ndarray, truncated: list[bool], padded: int) -> Any:
        return SimpleNamespace(
            probs=np.hstack([probs, unsafe[:, None]]), truncated=truncated, padded_tokens=padded
        )

    def score_comments(self, texts: Sequence[str]) -> Any:
        self.calls.append(len(texts))
        out = self.classifier.predict(texts)
        return self._out(out.probs, np.zeros(len(texts), np.float32), out.truncated, out.padded_tokens)

    def score_replies(self, pairs: Sequence[tuple[str, str]]) -> Any:
        self.calls.append(len(pairs))
        out = self.classifier.predict([r for _, r in pairs])
        judged = self.judge.predict(pairs)
        return self._out(out.probs, judged.unsafe, judged.truncated, out.padded_tokens + judged.padded_tokens)


def test_one_pass_model_windows_comments_and_replies(classifier: TextClassifier, judge: ReplyJudge) -> None:
    model = OnePassModel(classifier, judge)
    keys = (*LABEL_KEYS, "unsafe")
    scorer = WindowedMultitask(model, keys, WindowConfig(max_windows=500, tokens=16))
    comments = scorer.score_comments([LONG, "짧은 글"])
    assert comments.scores.shape == (2, len(keys)) and model.calls[-1] == comments.windows > 2
    assert set(comments.spans[0]) == set(keys) - {"clean"} and comments.spans[1] == {}
    replies = scorer.score_replies([("질문", LONG), (LONG, "네.")])
    assert model.calls[-1] == replies.windows and replies.truncated == [False, False]
    assert replies.spans[0]["unsafe"][1] <= len(LONG) and replies.spans[1] == {}
    # the pooled unsafe is the largest over the reply's windows, each judged with the prompt
    split = scorer.windower.split([LONG], ["질문"])  # type: ignore[union-attr]
    assert replies.scores[0, -1] == pytest.approx(float(judge.predict(split.pairs()).unsafe.max()), rel=1e-5)
