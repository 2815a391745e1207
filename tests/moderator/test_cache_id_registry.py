"""With MODERATOR_ID_REDIS_URL the id claims live in their own Redis (one that never evicts), the verdicts
in the cache's (one that may): each key lands where it belongs, and neither instance sees the other's."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from moderator.cache import ID_PREFIX, KEY_PREFIX, VerdictCache, cache_key, id_key


def test_claims_go_to_the_id_redis_and_verdicts_to_the_cache_redis(redis_server) -> None:  # type: ignore[no-untyped-def]
    cache_url, ids_url = f"{redis_server.url.rsplit('/', 1)[0]}/3", f"{redis_server.url.rsplit('/', 1)[0]}/4"

    async def run() -> None:
        cache = VerdictCache(cache_url, ttl_s=60, timeout_ms=2000, ids_url=ids_url)
        tag = uuid.uuid4().hex
        claim, verdict = id_key("comment", tag), cache_key("m", "p", "comment", tag)
        cache_db, ids_db = aioredis.from_url(cache_url), aioredis.from_url(ids_url)
        try:
            assert await cache.claim_ids([(claim, "comments/0/1")]) == [None]
            assert await cache.claim_ids([(claim, "comments/1/5")]) == ["comments/0/1"]
            await cache.set_many([(verdict, {"scores": [0.5]})])
            assert await cache.get_many([verdict]) == [{"scores": [0.5]}]
            assert await ids_db.exists(claim) == 1 and await cache_db.exists(claim) == 0
            assert await cache_db.exists(verdict) == 1 and await ids_db.exists(verdict) == 0
            assert claim.startswith(ID_PREFIX) and verdict.startswith(KEY_PREFIX)
        finally:
            await cache.close()
            await cache_db.aclose()
            await ids_db.aclose()

    asyncio.run(run())
