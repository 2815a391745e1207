"""The index follows real topics: queue items with channel/language from the inputs, counts, decisions,
human decisions in Redis; a restart resumes from its offsets and re-sends decisions to a flushed Redis."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis

from moderator.core.cache import human_key
from moderator.dashboard.indexer import Indexer
from moderator.dashboard.source import SourceReader
from moderator.dashboard.store import QueueFilter, Store
from tests.dashboard.conftest import flagged_verdict, send
from topics import SourcePosition, normalize_text
from topics.reviews import Decision, HumanVerdict, Review, VerdictRef, content_hash

pytestmark = pytest.mark.e2e


async def wait_until(check, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


def test_index_queue_counts_decisions_and_restart(broker, redis_server, fresh_topics, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fresh = fresh_topics()
    topics = replace(fresh.topic_names(), reviews=fresh.name("reviews"))
    asyncio.run(
        fresh.create(
            broker.url,
            ["comments", "llm-replies", "verdicts", "verdicts.flagged", "dead-letter", "reviews"],
            partitions=2,
        )
    )
    r = redis.Redis.from_url(redis_server.url)
    r.flushdb()
    db = tmp_path / "index.sqlite3"

    async def scenario() -> None:
        comments = [
            {"id": "a", "text": "경상도  사람들은", "channel": "news", "meta": {"lang": "ko"}},
            {"id": "b", "text": "노인들은 집에나 있어라", "channel": "sports"},
        ]
        pos = await send(broker.url, topics.comments, [orjson.dumps(c) for c in comments], [b"a", b"b"])
        (rpos,) = await send(
            broker.url,
            topics.replies,
            [orjson.dumps({"id": "r", "prompt": "질문", "reply": "답", "bot": "kids-bot"})],
        )
        flagged = [
            flagged_verdict("a", "comment", (topics.comments, *pos[0]), categories=["region"]),
            flagged_verdict("b", "comment", (topics.comments, *pos[1]), categories=["age"], action="block"),
            flagged_verdict("r", "reply", (topics.replies, *rpos), categories=[], unsafe=0.9),
        ]
        allowed = flagged_verdict("c", "comment", (topics.comments, 0, 99), categories=[], action="allow")
        await send(broker.url, topics.flagged, [orjson.dumps(v) for v in flagged])
        await send(broker.url, topics.verdicts, [orjson.dumps(v) for v in [*flagged, allowed]])
        dead = [
            {"reason": "invalid_json", "ts": time.time()},
            {"reason": "too_long", "ts": time.time()},
            b"not json",
        ]
        await send(
            broker.url, topics.dead_letter, [d if isinstance(d, bytes) else orjson.dumps(d) for d in dead]
        )

        store = Store(db)
        reader = SourceReader(broker.url)
        await reader.start()
        indexer = Indexer(store, topics, broker.url, reader, redis_url=redis_server.url)
        await indexer.start()
        await wait_until(lambda: store.counts().get("open") == 3 and not store.pending_enrichment(10))
        await wait_until(
            lambda: (
                store.totals_since(0)["verdicts"] == 4
                and sum(sum(v.values()) for v in store.series("stat_dead", "reason", 0, 10).values()) == 2
            )
        )
        assert indexer.bad_records == 1, "the unreadable dead letter is skipped and counted"
        a = store.item("a")
        assert a is not None and (a.channel, a.language) == ("news", "ko")
        assert store.item("r").channel == "kids-bot"  # type: ignore[union-attr]
        assert [i.id for i in store.queue(QueueFilter(sort="severity"), limit=10)[0]][0] == "b"

        # two reviewers on one item: both kept, the later one stands, and Redis holds it for the worker
        digest = content_hash("comment", normalize_text(comments[0]["text"]))
        ref = VerdictRef(
            topics.flagged,
            0,
            0,
            "review",
            ["region"],
            {"classifier": "cls-1"},
            "default@abc",
            {"region": 0.8},
            None,
        )
        later = Review(
            "r2",
            "a",
            "comment",
            digest,
            Decision.APPROVE,
            [],
            "bob",
            200.0,
            ref,
            SourcePosition(topics.comments, *pos[0]),
        )
        earlier = replace(
            later, review_id="r1", decision=Decision.RELABEL, labels=["region"], reviewer="alice", ts=100.0
        )
        await send(
            broker.url,
            topics.reviews,
            [orjson.dumps(later.to_dict()), orjson.dumps(earlier.to_dict())],
            [b"a", b"a"],
        )
        await wait_until(lambda: len(store.history("a")) == 2 and r.get(human_key(digest)) is not None)
        assert store.item("a").status == "approve" and store.item("a").decided_by == "bob"  # type: ignore[union-attr]
        stored = HumanVerdict.from_dict(orjson.loads(r.get(human_key(digest))))  # type: ignore[arg-type]
        assert stored is not None and stored.reviewer == "bob" and stored.action == "allow"
        await indexer.close()
        await reader.close()
        store.close()

        # restart on the same index after Redis lost everything: no double counting, decisions re-sent
        r.flushdb()
        store = Store(db)
        reader = SourceReader(broker.url)
        await reader.start()
        indexer = Indexer(store, topics, broker.url, reader, redis_url=redis_server.url)
        await indexer.start()
        await wait_until(lambda: r.get(human_key(digest)) is not None)
        await asyncio.sleep(1.0)
        assert store.totals_since(0)["verdicts"] == 4 and len(store.history("a")) == 2
        assert await indexer.lag() == {t: 0 for t in indexer.watched}
        await indexer.close()
        await reader.close()
        store.close()

    asyncio.run(scenario())


def test_a_redis_outage_delays_human_decisions_and_loses_none(
    broker, redis_server, fresh_topics, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    fresh = fresh_topics()
    topics = replace(fresh.topic_names(), reviews=fresh.name("reviews"))
    asyncio.run(
        fresh.create(broker.url, ["verdicts", "verdicts.flagged", "dead-letter", "reviews"], partitions=1)
    )
    digest = content_hash("comment", "다시 올 글")
    ref = VerdictRef(topics.flagged, 0, 0, "review", [], {}, "p@1", {}, None)
    review = Review("rv", "x", "comment", digest, Decision.REMOVE, ["age"], "alice", 1.0, ref, None)

    async def scenario() -> None:
        store = Store(tmp_path / "i.sqlite3")
        reader = SourceReader(broker.url)
        await reader.start()
        indexer = Indexer(store, topics, broker.url, reader, redis_url=redis_server.url)
        await indexer.start()
        redis_server.kill()
        try:
            await send(broker.url, topics.reviews, [orjson.dumps(review.to_dict())], [b"x"])
            await wait_until(lambda: store.history("x") and indexer.redis_ok is False)
            assert store.pending_overrides() == [digest]
        finally:
            redis_server.restart()
        await wait_until(lambda: not store.pending_overrides(), 30)
        value = redis.Redis.from_url(redis_server.url).get(human_key(digest))
        assert value is not None and orjson.loads(value)["decision"] == "remove"
        await indexer.close()
        await reader.close()
        store.close()

    asyncio.run(scenario())
