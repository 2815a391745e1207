"""A reviewer's decision on a text overrides the models for every repeat of it (via the verdict cache)."""

from __future__ import annotations

import orjson
import redis

from moderator.cache import human_key
from moderator.metrics import Metrics
from tests.moderator.test_pipeline import comment, make_pipeline, models, redis_url, reply, rows, run  # noqa: F401
from topics import normalize_text
from topics.reviews import Decision, HumanVerdict, content_hash


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
