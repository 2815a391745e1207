"""The pipeline on real tiny ONNX models and a real Redis: caching, dead letters, order, outages, and
human decisions overriding the models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from moderator.core.cache import VerdictCache, human_key
from moderator.core.pipeline import InputMessage, Pipeline
from moderator.core.policy import load_policy, parse_policy
from moderator.core.redis_store import RedisStore
from moderator.core.registry import IdRegistry
from moderator.metrics import Metrics
from moderator.runtime.base import ClassifierOutput
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from moderator.settings import DEFAULT_POLICY
from topics import LABEL_KEYS, SourcePosition, content_revision, normalize_text
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


def make_pipeline(  # type: ignore[no-untyped-def]
    models, redis_url: str | None, metrics: Metrics | None = None, policy=None, shared_ids: bool = True
) -> Pipeline:
    metrics = metrics or Metrics()
    # a generous timeout: these tests are about caching and ids, not latency (a fresh-clone run on a busy
    # machine once waited > 200 ms for a new connection's first GET and went on uncached)
    store = RedisStore(redis_url, timeout_ms=2000, retry_s=0.2, metrics=metrics) if redis_url else None
    cache = VerdictCache(store, ttl_s=60, metrics=metrics) if store else None
    ids = IdRegistry(store if shared_ids else None, ttl_s=60)
    return Pipeline(*models, policy or load_policy(DEFAULT_POLICY), cache=cache, ids=ids, metrics=metrics)


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def rows(metrics: Metrics, model: str) -> float:
    return metric(metrics, "moderator_model_rows_total", model=model)


class FailsOn:
    """The real classifier, except that it raises for texts containing ``marker`` while ``broken``."""

    def __init__(self, classifier, marker: str) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.marker, self.broken = classifier, marker, True
        self.model_id, self.provider = classifier.model_id, classifier.provider

    def predict(self, texts):  # type: ignore[no-untyped-def]
        if self.broken and any(self.marker in t for t in texts):
            raise RuntimeError("injected model failure")
        return self.inner.predict(texts)


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
        assert list(v.scores) == list(LABEL_KEYS)
        assert "clean" not in v.categories
        assert v.action in ("allow", "review", "block")
        assert v.flagged == (v.action != "allow")
        assert v.model == {"classifier": models[0].model_id, "judge": models[1].model_id}
        assert v.cached is False
    assert result.verdicts[0].unsafe is None and result.verdicts[1].unsafe is not None
    # the verdict carries the models' own numbers (rounded), not something rebuilt on the way
    direct: ClassifierOutput = models[0].predict(["안녕하세요 좋은 아침", "네, 같이 해봐요."])
    for verdict, probs in zip(result.verdicts[:2], direct.probs, strict=True):
        assert list(verdict.scores.values()) == pytest.approx([float(p) for p in probs], abs=1e-6)
    judged = models[1].predict([("숙제 도와줘", "네, 같이 해봐요.")])
    assert result.verdicts[1].unsafe == pytest.approx(float(judged.unsafe[0]), abs=1e-6)
    assert result.verdicts[0].revision == content_revision("comment", "안녕하세요 좋은 아침")


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


def test_an_edited_comment_gets_its_own_verdict_naming_the_revision_it_supersedes(
    run, models, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    pipe = make_pipeline(models, redis_url, metrics)
    a = InputMessage(
        "comment", orjson.dumps({"id": "same", "text": "하나"}), SourcePosition("comments", 0, 1)
    )
    b = InputMessage("comment", orjson.dumps({"id": "same", "text": "둘"}), SourcePosition("comments", 0, 2))
    result = run(pipe.process([a, b]))
    assert not result.dead_letters
    first, second = result.verdicts
    assert (first.revision, first.supersedes) == (content_revision("comment", "하나"), None)
    assert (second.revision, second.supersedes) == (content_revision("comment", "둘"), first.revision)
    assert rows(metrics, "classifier") == 2
    # another worker (a fresh pipeline on the same Redis) sees the id's latest revision
    c = InputMessage("comment", orjson.dumps({"id": "same", "text": "셋"}), SourcePosition("comments", 1, 7))
    third = run(make_pipeline(models, redis_url, metrics).process([c])).verdicts[0]
    assert third.supersedes == second.revision and not third.cached


def test_a_repeat_of_the_same_content_is_idempotent_and_never_reaches_the_model(
    run, models, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    value = orjson.dumps({"id": "rep", "text": "같은 내용"})
    first = run(
        make_pipeline(models, redis_url, metrics).process(
            [InputMessage("comment", value, SourcePosition("comments", 0, 1))]
        )
    ).verdicts[0]
    for position in (SourcePosition("comments", 0, 1), SourcePosition("comments", 3, 40)):
        again = run(
            make_pipeline(models, redis_url, metrics).process([InputMessage("comment", value, position)])
        )
        v = again.verdicts[0]
        assert not again.dead_letters and v.cached and v.supersedes is None
        assert (v.revision, v.scores, v.action) == (first.revision, first.scores, first.action)
    assert rows(metrics, "classifier") == 1


def test_a_model_error_claims_nothing_so_the_record_refed_later_is_scored(
    run, models, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    failing = FailsOn(models[0], "고장")
    pipe = make_pipeline((failing, models[1]), redis_url)
    value = orjson.dumps({"id": "m1", "text": "고장 난 모델"})
    dead = run(pipe.process([InputMessage("comment", value, SourcePosition("comments", 0, 1))]))
    assert [d.reason for d in dead.dead_letters] == ["model_error"] and not dead.verdicts
    failing.broken = False
    replayed = run(pipe.process([InputMessage("comment", value, SourcePosition("comments", 0, 9))]))
    assert [v.id for v in replayed.verdicts] == ["m1"] and replayed.verdicts[0].supersedes is None


def test_ids_stay_in_the_process_unless_shared(run, models, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    first = InputMessage("comment", orjson.dumps({"id": "s", "text": "처음"}), SourcePosition("f", 0, 0))
    edit = InputMessage("comment", orjson.dumps({"id": "s", "text": "수정"}), SourcePosition("f", 0, 1))
    run(make_pipeline(models, redis_url).process([first]))
    private = run(make_pipeline(models, redis_url, shared_ids=False).process([edit])).verdicts[0]
    assert private.supersedes is None
    assert redis.Redis.from_url(redis_url).keys("moderator:id:*") != []  # the shared one did record
    shared = run(make_pipeline(models, redis_url).process([edit])).verdicts[0]
    assert shared.supersedes == content_revision("comment", "처음")


def test_redis_down_the_stream_goes_on_and_comes_back(run, models, redis_server) -> None:  # type: ignore[no-untyped-def]
    metrics = Metrics()
    pipe = make_pipeline(models, redis_server.url, metrics)
    redis_server.kill()
    try:
        result = run(pipe.process([comment(i, f"캐시 없이 {i}") for i in range(4)]))
        assert len(result.verdicts) == 4 and not any(v.cached for v in result.verdicts)
        errors = ("ids", "get", "set")
        assert sum(metric(metrics, "moderator_cache_errors_total", op=op) for op in errors) >= 1
        assert metric(metrics, "moderator_cache_up") == 0
    finally:
        redis_server.restart()
    import time

    time.sleep(0.3)  # past retry_s
    run(pipe.process([comment(10, "다시 캐시")]))
    again = run(pipe.process([comment(11, "다시 캐시")]))
    assert again.verdicts[0].cached and metric(metrics, "moderator_cache_up") == 1


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


def test_a_cache_key_seen_with_other_scores_is_decided_again(run, models) -> None:  # type: ignore[no-untyped-def]
    """The decision memo is keyed by cache key, but a key coming back with another core (another
    worker's cached scores) gets the decision of those scores, not of the scores seen first."""
    from moderator.core.verdict_core import VerdictCore

    pipeline = make_pipeline(models, None)
    policy = pipeline.policy
    low = VerdictCore(tuple([0.0] * (len(LABEL_KEYS) - 1) + [1.0]), None, False, language="ko")
    high = VerdictCore(tuple([0.99] + [0.0] * (len(LABEL_KEYS) - 2) + [0.0]), None, False, language="ko")
    first, _ = pipeline._decide("moderator:v:k", low, policy, policy)
    again, _ = pipeline._decide(
        "moderator:v:k", VerdictCore(low.scores, None, False, language="ko"), policy, policy
    )
    other, scores = pipeline._decide("moderator:v:k", high, policy, policy)
    assert first.action == "allow" and again is first  # an equal core reuses the decision
    assert other.action != "allow" and scores[LABEL_KEYS[0]] == 0.99
    run(pipeline.close())
