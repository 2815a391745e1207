"""The API and the worker share one Redis verdict cache: a text verdicted on one is a hit on the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson

from moderator.local.embedded import EmbeddedBroker, EmbeddedRedis
from moderator.settings import DEFAULT_CLASSIFIER, DEFAULT_JUDGE
from tests.api.conftest import ServerProcess
from tests.fixtures.services import FreshTopics
from tests.fixtures.worker import WorkerProcess, produce, read_until


def test_stream_and_api_share_verdicts(
    broker: EmbeddedBroker,
    redis_server: EmbeddedRedis,
    fresh_topics: Callable[[], FreshTopics],
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    fresh = fresh_topics()
    asyncio.run(fresh.create(broker.url, partitions=1))
    worker = WorkerProcess.of(
        broker_url=broker.url,
        redis_url=redis_server.url,
        topics=fresh.topic_names(),
        classifier=DEFAULT_CLASSIFIER,
        judge=DEFAULT_JUDGE,
        app_id=fresh.group_id("moderator"),
        log_path=tmp_path / "worker.log",
    )
    server = start_server()
    worker.start(wait_ready=True, timeout_s=120)
    try:
        tag = uuid.uuid4().hex[:8]
        stream_first = f"스트림에서 먼저 본 댓글 {tag}"
        api_first = f"API에서 먼저 본 답변입니다 {tag}"
        topics = fresh.topic_names()

        asyncio.run(produce(broker.url, topics.comments, [orjson.dumps({"id": "s-1", "text": stream_first})]))
        got = asyncio.run(
            read_until(broker.url, [topics.verdicts], lambda o: len(o[topics.verdicts]) >= 1, 60)
        )
        on_stream = orjson.loads(got[topics.verdicts][0].value)
        assert on_stream["id"] == "s-1" and on_stream["cached"] is False

        status, on_api = server.post("/v1/comments", {"id": "a-1", "text": stream_first})
        assert status == 200 and on_api["cached"] is True
        assert on_api["scores"] == on_stream["scores"] and on_api["action"] == on_stream["action"]

        status, api_reply = server.post("/v1/replies", {"id": "a-2", "prompt": "안녕?", "reply": api_first})
        assert status == 200 and api_reply["cached"] is False
        asyncio.run(
            produce(
                broker.url,
                topics.replies,
                [orjson.dumps({"id": "s-2", "prompt": "안녕?", "reply": api_first})],
            )
        )
        got = asyncio.run(
            read_until(broker.url, [topics.verdicts], lambda o: len(o[topics.verdicts]) >= 2, 60)
        )
        on_stream_reply = orjson.loads(got[topics.verdicts][1].value)
        assert on_stream_reply["id"] == "s-2" and on_stream_reply["cached"] is True
        assert (
            on_stream_reply["unsafe"] == api_reply["unsafe"]
            and on_stream_reply["scores"] == api_reply["scores"]
        )
    finally:
        worker.kill()
