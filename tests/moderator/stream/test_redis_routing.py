"""With MODERATOR_ID_REDIS_URL the id registry lives in its own Redis (one that never evicts), the verdict
cache in the cache's (one that may): each key lands where it belongs, and neither instance holds the
other's. Without it both share one Redis, as before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis

from moderator.core.cache import KEY_PREFIX
from moderator.core.pipeline import InputMessage
from moderator.core.registry import ID_PREFIX
from moderator.metrics import Metrics
from moderator.settings import Settings
from moderator.stream.worker import build_pipeline
from topics import SourcePosition


def _keys(url: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return [k.decode() for k in client.keys("moderator:*")]
    finally:
        client.close()


def _score_one(settings: Settings) -> None:
    async def run() -> None:
        pipeline = build_pipeline(settings, Metrics())
        try:
            result = await pipeline.process(
                [InputMessage("comment", b'{"id": "c-1", "text": "hello"}', SourcePosition("comments", 0, 7))]
            )
            assert len(result.verdicts) == 1
        finally:
            await pipeline.close()

    asyncio.run(run())


def test_ids_and_verdicts_go_to_their_own_redis(
    redis_server, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    base = redis_server.url.rsplit("/", 1)[0]
    cache_url, ids_url = f"{base}/5", f"{base}/6"
    for url in (cache_url, ids_url):
        redis.Redis.from_url(url).flushdb()
    settings = Settings(
        redis_url=cache_url,
        id_redis_url=ids_url,
        classifier_path=tiny_classifier_dir,
        judge_path=tiny_judge_dir,
        device="cpu",
    )
    _score_one(settings)
    cache_keys, id_keys = _keys(cache_url), _keys(ids_url)
    assert cache_keys and all(k.startswith(KEY_PREFIX) for k in cache_keys)
    assert id_keys and all(k.startswith(ID_PREFIX) for k in id_keys)

    shared = f"{base}/7"
    redis.Redis.from_url(shared).flushdb()
    _score_one(
        Settings(
            redis_url=shared, classifier_path=tiny_classifier_dir, judge_path=tiny_judge_dir, device="cpu"
        )
    )
    keys = _keys(shared)
    assert any(k.startswith(KEY_PREFIX) for k in keys) and any(k.startswith(ID_PREFIX) for k in keys)
