"""The pipeline on real tiny ONNX models and a real Redis: caching, dead letters, order, outages, and
human decisions overriding the models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from moderator.cache import VerdictCache, human_key
from moderator.metrics import Metrics
from moderator.pipeline import InputMessage, Pipeline
from moderator.policy import load_policy, parse_policy
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from moderator.settings import DEFAULT_POLICY
from topics import LABEL_KEYS, SourcePosition, normalize_text
from topics.reviews import Decision, HumanVerdict, content_hash


def comment(i: int, text: str) -> InputMessage:
    return InputMessage(
        "comment", orjson.dumps({"id": f"c{i}", "text": text}), SourcePosition("comments", 0, i)
    )


def reply(i: int, prompt: str, text: str) -> InputMessage:
    return InputMessage(
        "reply",
        orjson.dumps({"id": f"r{i}", "prompt": prompt, "reply": text}),
        SourcePosition("llm-replies", 0, i),
    )


@pytest.fixture
def run() -> Iterator:  # type: ignore[type-arg]
    """One event loop per test: the Redis client's connections belong to the loop that opened them."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture
def models(tiny_classifier_dir: Path, tiny_judge_dir: Path):  # type: ignore[no-untyped-def]
    options = RuntimeOptions(device="cpu", intra_op_threads=1)
    return load_classifier(tiny_classifier_dir, options), load_judge(tiny_judge_dir, options)


@pytest.fixture
def redis_url(redis_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    redis.Redis.from_url(redis_server.url).flushdb()
    yield redis_server.url


def make_pipeline(models, redis_url: str | None, metrics: Metrics | None = None, policy=None) -> Pipeline:  # type: ignore[no-untyped-def]
    metrics = metrics or Metrics()
    cache = (
        VerdictCache(redis_url, ttl_s=60, timeout_ms=200, retry_s=0.2, metrics=metrics) if redis_url else None
    )
    return Pipeline(*models, policy or load_policy(DEFAULT_POLICY), cache=cache, metrics=metrics)


def rows(metrics: Metrics, model: str) -> float:
    return metrics.model_rows.labels(model=model)._value.get()


def test_verdicts_in_order_with_all_scores(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(models, redis_url)
    msgs = [
        comment(0, "안녕하세요 좋은 아침"),
        reply(1, "숙제 도와줘", "네, 같이 해봐요."),
        comment(2, "이 나라 사람들은 다 별로야"),
    ]
    result = run(pipe.process(msgs))
    assert [v.id for v in result.verdicts] == ["c0", "r1", "c2"]
    assert not result.dead_letters
    for v in result.verdicts:
        assert set(v.scores) == set(LABEL_KEYS)
        assert all(0.0 <= p <= 1.0 for p in v.scores.values())
        assert "clean" not in v.categories
        assert v.action in ("allow", "review", "block")
        assert v.flagged == (v.action != "allow")
        assert v.model == {"classifier": models[0].model_id, "judge": models[1].model_id}
        assert v.cached is False
    assert result.verdicts[0].unsafe is None and result.verdicts[1].unsafe is not None


def test_repeats_are_cached_and_never_reach_the_model(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    pipe = make_pipeline(models, redis_url, metrics)
    first = run(pipe.process([comment(i, f"댓글 번호 {i % 3}") for i in range(6)]))
    assert [v.cached for v in first.verdicts] == [False, False, False, True, True, True]
    assert rows(metrics, "classifier") == 3
    # a new batch: whitespace/NFC variants of the same texts hit Redis
    second = run(pipe.process([comment(10 + i, f"  댓글   번호 {i}  ") for i in range(3)]))
    assert all(v.cached for v in second.verdicts)
    assert rows(metrics, "classifier") == 3
    assert [v.scores for v in second.verdicts] == [v.scores for v in first.verdicts[:3]]
    # Redis holds hashes and verdict cores only, never the text
    r = redis.Redis.from_url(redis_url)
    for key in r.keys("*"):
        assert "댓글".encode() not in key
        value = r.get(key)
        assert value is not None and "댓글".encode() not in value


def test_policy_change_never_serves_a_stale_verdict(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    run(make_pipeline(models, redis_url, metrics).process([comment(0, "같은 문장")]))
    strict = parse_policy(
        {"name": "strict", "labels": {"*": {"threshold": 0.0001, "block": 0.9999}}, "judge": {}}
    )
    v = run(make_pipeline(models, redis_url, metrics, strict).process([comment(1, "같은 문장")])).verdicts[0]
    assert v.cached is False and v.policy.startswith("strict@")
    assert rows(metrics, "classifier") == 2


def test_bad_records_become_dead_letters_and_the_rest_go_on(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(models, redis_url)
    bad = [
        InputMessage("comment", b"\xff\xfe", SourcePosition("comments", 0, 1)),
        InputMessage("comment", b"{not json", SourcePosition("comments", 0, 2)),
        InputMessage("comment", orjson.dumps({"id": "x", "text": ""}), SourcePosition("comments", 0, 3)),
        InputMessage("reply", orjson.dumps({"id": "y", "reply": "hi"}), SourcePosition("llm-replies", 0, 4)),
    ]
    result = run(pipe.process([comment(0, "정상 댓글"), *bad, comment(5, "또 다른 댓글")]))
    assert [v.id for v in result.verdicts] == ["c0", "c5"]
    assert [d.reason for d in result.dead_letters] == [
        "invalid_utf8",
        "invalid_json",
        "empty_text",
        "missing_field",
    ]
    assert result.dead_letters[0].original == b"\xff\xfe"
    assert result.dead_letters[3].source == SourcePosition("llm-replies", 0, 4)


def test_duplicate_ids_from_another_offset_are_dead_lettered_but_redelivery_is_not(
    run, models, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(models, redis_url)
    a = InputMessage(
        "comment", orjson.dumps({"id": "same", "text": "하나"}), SourcePosition("comments", 0, 1)
    )
    b = InputMessage("comment", orjson.dumps({"id": "same", "text": "둘"}), SourcePosition("comments", 0, 2))
    result = run(pipe.process([a, b]))
    assert [v.id for v in result.verdicts] == ["same"]
    assert [d.reason for d in result.dead_letters] == ["duplicate_id"]
    # the same record re-delivered (same offset) after a crash gets its verdict again, from a fresh pipeline
    again = run(make_pipeline(models, redis_url).process([a]))
    assert [v.id for v in again.verdicts] == ["same"] and again.verdicts[0].cached


def test_redis_down_the_stream_goes_on_and_comes_back(run, models, redis_server) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    pipe = make_pipeline(models, redis_server.url, metrics)
    redis_server.kill()
    try:
        result = run(pipe.process([comment(i, f"캐시 없이 {i}") for i in range(4)]))
        assert len(result.verdicts) == 4 and not any(v.cached for v in result.verdicts)
        assert sum(metrics.cache_errors.labels(op=op)._value.get() for op in ("claim", "get", "set")) >= 1
        assert metrics.cache_up._value.get() == 0
    finally:
        redis_server.restart()
    import time

    time.sleep(0.3)  # past retry_s
    run(pipe.process([comment(10, "다시 캐시")]))
    again = run(pipe.process([comment(11, "다시 캐시")]))
    assert again.verdicts[0].cached and metrics.cache_up._value.get() == 1


def test_no_cache_configured_still_verdicts(run, models) -> None:  # type: ignore[no-untyped-def]
    result = run(make_pipeline(models, None).process([comment(0, "캐시 없음"), comment(1, "캐시 없음")]))
    assert [v.cached for v in result.verdicts] == [False, True]


# -- human decisions (written by the dashboard) win for repeats ---------------------------------------


def decide(url: str, digest: str, decision: Decision, labels: list[str], unsafe: float | None = None) -> None:
    human = HumanVerdict(decision, labels, "alice", "rev-1", 12.0, {"region": 0.7, "clean": 0.2}, unsafe)
    redis.Redis.from_url(url).set(human_key(digest), orjson.dumps(human.to_dict()))


def test_human_decisions_win_for_repeats_in_any_spelling(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    pipe = make_pipeline(models, redis_url, metrics)
    approved, removed = "이 동네 사람들은 다 그래", "너 같은 놈은 그냥 꺼져라"
    decide(redis_url, content_hash("comment", normalize_text(approved)), Decision.APPROVE, [])
    decide(redis_url, content_hash("comment", normalize_text(removed)), Decision.RELABEL, ["profanity"])
    result = run(
        pipe.process([comment(0, approved + "  "), comment(1, removed), comment(2, "처음 보는 문장")])
    )
    by_id = {v.id: v for v in result.verdicts}
    assert by_id["c0"].action == "allow" and not by_id["c0"].flagged and by_id["c0"].cached
    assert by_id["c0"].to_dict()["human"] == {
        "decision": "approve",
        "reviewer": "alice",
        "review_id": "rev-1",
        "ts": 12.0,
    }
    assert by_id["c1"].action == "block" and by_id["c1"].categories == ["profanity"]
    assert by_id["c1"].scores["region"] == 0.7 and set(by_id["c1"].scores) == set(by_id["c2"].scores)
    assert "human" not in by_id["c2"].to_dict() and not by_id["c2"].cached
    assert rows(metrics, "classifier") == 1, "only the unreviewed text reached the model"
    run(pipe.close())


def test_replies_match_on_prompt_and_reply_and_keep_the_judge_score(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(models, redis_url)
    decide(redis_url, content_hash("reply", "답장", "질문"), Decision.REMOVE, ["unsafe"], unsafe=0.9)
    result = run(pipe.process([reply(0, "질문", "답장"), reply(1, "다른 질문", "답장")]))
    first, second = result.verdicts
    assert (
        first.human is not None and first.action == "block" and first.unsafe == 0.9 and first.categories == []
    )
    assert second.human is None, "another user message is another text"
    run(pipe.close())


def test_a_malformed_decision_in_redis_is_ignored(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(models, redis_url)
    redis.Redis.from_url(redis_url).set(
        human_key(content_hash("comment", "문장 하나")), b'{"decision": "nope"}'
    )
    (verdict,) = run(pipe.process([comment(0, "문장 하나")])).verdicts
    assert verdict.human is None and not verdict.cached
    run(pipe.close())
