"""The pipeline with the bundled (multitask) model: long texts read whole, a language per verdict, the reason why.

Padding is everyday Korean; the hate sentences are short and unambiguous. These pin what a platform
checks first: padding is no bypass, long harmless text is no alarm, English is tagged and not blocked
on an unvalidated score, and the verdict names the window that fired.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
import redis

from moderator.core.cache import VerdictCache
from moderator.core.pipeline import InputMessage, Pipeline
from moderator.core.policy import Policy, load_policy, parse_policy
from moderator.core.redis_store import RedisStore
from moderator.metrics import Metrics
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.windows import WindowConfig
from moderator.settings import DEFAULT_CLASSIFIER, DEFAULT_JUDGE, DEFAULT_POLICY
from topics import SourcePosition, Verdict, normalize_text

FRIENDLY = [
    "오늘 날씨가 정말 좋아서 친구들이랑 공원에 산책을 다녀왔어요.",
    "주말에 가족들과 맛있는 저녁을 먹으면서 즐거운 시간을 보냈습니다.",
    "새로 시작한 드라마가 너무 재미있어서 다음 화가 기다려져요.",
    "도서관에서 빌린 책을 다 읽었는데 마지막 장면이 감동적이었어요.",
    "동네 빵집에서 산 크루아상이 바삭하고 고소해서 또 가고 싶네요.",
    "요즘 아침마다 조깅을 하는데 몸도 마음도 가벼워지는 느낌이에요.",
    "강아지랑 한강에서 피크닉을 했는데 사람들이 많이 귀여워해 줬어요.",
    "이번 여름휴가는 제주도로 가려고 숙소를 알아보는 중이에요.",
    "회사 동료가 생일이라고 케이크를 사 와서 다 같이 나눠 먹었어요.",
    "퇴근하고 좋아하는 음악을 들으면서 천천히 걸어오니 기분이 좋네요.",
]
HATE = [
    "이 한남충 새끼들은 다 죽어야 돼 씨발",
    "짱깨들은 다 자기 나라로 꺼져라 더러운 것들",
    "여자들은 집에서 밥이나 해라 김치녀들",
    "게이들은 정신병자니까 치료받아야 함",
]
OPTIONS = RuntimeOptions(device="cpu", intra_op_threads=2)


def friendly(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars:
        parts.append(rng.choice(FRIENDLY))
    return " ".join(parts)


class RowCounter:
    """Counts the bundled multitask model's comment passes and their rows (a long text = many rows),
    on the model object itself, so the pipeline still sees one model serving both roles."""

    def __init__(self, model: Any) -> None:
        self.calls: list[int] = []
        original = model.score_comments

        def score_comments(texts: Sequence[str]) -> Any:
            self.calls.append(len(texts))
            return original(texts)

        model.score_comments = score_comments


@pytest.fixture(scope="module")
def models() -> tuple[Any, Any]:
    return load_classifier(DEFAULT_CLASSIFIER, OPTIONS), load_judge(DEFAULT_JUDGE, OPTIONS)


@pytest.fixture(scope="module")
def comment_passes(models: tuple[Any, Any]) -> RowCounter:
    return RowCounter(models[0].multitask)


def run(pipe: Pipeline, messages: list[InputMessage]) -> list[Verdict]:
    async def go() -> list[Verdict]:
        try:
            result = await pipe.process(messages)
        finally:
            await pipe.close()
        assert not result.dead_letters, result.dead_letters
        return result.verdicts

    return asyncio.run(go())


def comment(i: int, text: str) -> InputMessage:
    return InputMessage(
        "comment", orjson.dumps({"id": f"c{i}", "text": text}), SourcePosition("comments", 0, i)
    )


def pipeline(models: Any, policy: Policy | None = None, **kw: Any) -> Pipeline:
    classifier, judge = models
    return Pipeline(classifier, judge, policy or load_policy(DEFAULT_POLICY), **kw)


def test_hate_after_4000_friendly_characters_is_flagged_and_the_window_named(models: Any) -> None:
    texts = [friendly(4000, seed) + " " + hate for seed, hate in enumerate(HATE)]
    verdicts = run(pipeline(models), [comment(i, t) for i, t in enumerate(texts)])
    for text, hate, v in zip(texts, HATE, verdicts, strict=True):
        assert v.flagged and v.action in ("review", "block"), (hate, v.scores)
        assert not v.truncated and v.language == "ko"
        labels = [w for w in v.why if w.rule == "label"]
        assert labels, v.why
        where = normalize_text(text).index(hate)
        for w in labels:
            assert w.span is not None and w.score is not None and w.threshold is not None
            start, end = w.span
            # the window that fired holds the hate sentence, far past the padding
            assert start <= where and where + len(hate) // 2 <= end, (w, where)
            assert start > 3000 and w.score >= w.threshold


def test_long_friendly_text_is_allowed_and_windows_share_one_batch(
    models: Any, comment_passes: RowCounter
) -> None:
    classifier = comment_passes
    metrics = Metrics()
    long_texts = [friendly(7000, seed) for seed in (11, 12)]
    shorts = ["좋은 글 감사합니다", "오늘도 화이팅"]
    classifier.calls.clear()
    verdicts = run(
        pipeline(models, metrics=metrics), [comment(i, t) for i, t in enumerate(long_texts + shorts)]
    )
    for v in verdicts:
        assert (v.action, v.flagged, v.truncated, v.why) == ("allow", False, False, [])
    # every window of both long texts went to the model in the same single call as the short comments
    assert len(classifier.calls) == 1 and classifier.calls[0] > 100
    assert metrics.model_rows.labels(model="classifier")._value.get() == classifier.calls[0]


def test_text_beyond_the_window_cap_is_truncated_and_sent_to_review(models: Any) -> None:
    pipe = pipeline(models, windows=WindowConfig(max_windows=4))
    (v,) = run(pipe, [comment(0, friendly(3000, 5))])
    assert v.truncated and v.action == "review"
    assert [w.rule for w in v.why] == ["truncated"]


def test_english_comment_is_tagged_and_not_blocked_on_an_unvalidated_score(models: Any) -> None:
    raw = json.loads(DEFAULT_POLICY.read_text())
    raw["labels"]["profanity"]["block"] = raw["labels"]["profanity"]["threshold"]  # block on any profanity
    policy = parse_policy(raw)
    text = "this is the worst fucking video ever, you idiots"
    english, korean = run(
        pipeline(models, policy), [comment(0, text), comment(1, "씨발 이 병신들 영상 진짜 최악이네")]
    )
    assert korean.language == "ko" and korean.action == "block"
    assert english.language == "en"
    assert "profanity" in english.categories and english.action == "review"
    assert [w.rule for w in english.why] == ["label", "language"]
    assert english.why[0].band == "block" and "'en' is not validated" in str(english.why[1].detail)


def test_long_reply_judged_in_windows_with_the_prompt_and_cached_with_its_reasons(
    models: Any, redis_server: Any
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    reply = friendly(3000, 7) + " " + HATE[1]
    message = InputMessage(
        "reply",
        orjson.dumps({"id": "r1", "prompt": "요즘 어떻게 지내?", "reply": reply}),
        SourcePosition("llm-replies", 0, 1),
    )

    def with_cache() -> Pipeline:
        metrics = Metrics()
        store = RedisStore(redis_server.url, timeout_ms=5000, metrics=metrics)
        return pipeline(models, cache=VerdictCache(store, ttl_s=60, metrics=metrics), metrics=metrics)

    first_pipe = with_cache()
    (first,) = run(first_pipe, [message])
    assert first_pipe.metrics.model_rows.labels(model="judge")._value.get() > 10  # the reply in windows
    assert first.flagged and first.language == "ko" and not first.cached
    assert any(w.rule == "label" and w.span is not None for w in first.why)
    # another record (another id) with the same prompt and reply: served from the cache
    same = orjson.dumps({"id": "r2", "prompt": "요즘 어떻게 지내?", "reply": reply})
    (again,) = run(with_cache(), [InputMessage("reply", same, SourcePosition("llm-replies", 0, 2))])
    assert again.cached
    assert (again.why, again.language, again.action) == (first.why, first.language, first.action)


def _hate_in_the_middle(seed: int, punctuated: bool) -> tuple[str, str]:
    padding = friendly(4000, seed)
    cut = padding.index(". ", len(padding) // 2) + 2
    hate = HATE[seed]
    text = padding[:cut] + hate + (". " if punctuated else " ") + padding[cut:]
    return (text, hate) if punctuated else (text.replace(".", ""), hate)


def test_long_texts_cut_at_sentences_whatever_their_punctuation(models: Any) -> None:
    """Sentence windows do not depend on full stops: Korean endings and line breaks cut too, so
    friendly prose without punctuation or in lines stays allowed, and hate in the middle of 4,000
    friendly characters is flagged with or without a full stop around it, its window named."""
    harmless = [friendly(4000, 20).replace(". ", ".\n"), friendly(4000, 21).replace(".", "")]
    hidden = [_hate_in_the_middle(seed, punctuated) for seed in range(4) for punctuated in (True, False)]
    messages = [comment(i, t) for i, t in enumerate(harmless + [t for t, _ in hidden])]
    verdicts = run(pipeline(models), messages)
    for v in verdicts[:2]:
        assert (v.action, v.truncated, v.why) == ("allow", False, []), v.why
    for (text, hate), v in zip(hidden, verdicts[2:], strict=True):
        assert v.action in ("review", "block") and not v.truncated, (hate, v.why)
        where = normalize_text(text).index(hate)
        spans = [w.span for w in v.why if w.rule == "label"]
        assert spans and all(s is not None and s[0] <= where < s[1] for s in spans), (hate, v.why)
