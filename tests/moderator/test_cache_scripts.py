"""The batch scripts of the verdict cache (one Redis command per batch) and their pipelined fallback."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from moderator.cache import VerdictCache, cache_key, id_key


async def _exercise(url: str, scripted: bool) -> None:
    cache = VerdictCache(url, ttl_s=60, timeout_ms=2000)
    cache._scripts_ok = scripted
    tag = uuid.uuid4().hex
    a, b = id_key("t", f"{tag}-a"), id_key("t", f"{tag}-b")
    try:
        # first claims win: nobody else holds them
        assert await cache.claim_ids([(a, "t/0/1"), (b, "t/0/2")]) == [None, None]
        # redelivery of the same position is not a duplicate; another position is, and names the holder
        assert await cache.claim_ids([(a, "t/0/1"), (b, "t/1/9")]) == [None, "t/0/2"]
        keys = [cache_key("m", "p", "comment", f"{tag}-{i}") for i in range(3)]
        await cache.set_many([(keys[0], {"scores": [0.5]}), (keys[2], {"scores": [0.25], "unsafe": None})])
        assert await cache.get_many(keys) == [{"scores": [0.5]}, None, {"scores": [0.25], "unsafe": None}]
        ttl = await aioredis.from_url(url).ttl(keys[0])
        assert 0 < ttl <= 60
        assert cache._scripts_ok is scripted
    finally:
        await cache.close()


@pytest.mark.parametrize("scripted", [True, False], ids=["script", "pipelined"])
def test_claims_and_sets_agree_between_script_and_pipeline(redis_server, scripted: bool) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(_exercise(redis_server.url, scripted))


def test_a_server_refusing_scripts_falls_back_to_pipelined_commands(redis_server) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        cache = VerdictCache(redis_server.url, ttl_s=60, timeout_ms=2000)

        async def refused(*args: object, **kwargs: object) -> None:
            raise aioredis.ResponseError("NOPERM this user has no permissions to run the 'evalsha' command")

        cache._claim_script = refused
        key = id_key("t", uuid.uuid4().hex)
        try:
            assert await cache.claim_ids([(key, "t/0/1")]) == [None]
            assert cache._scripts_ok is False
            assert await cache.claim_ids([(key, "t/0/2")]) == ["t/0/1"]
            assert cache.available
        finally:
            await cache.close()

    asyncio.run(run())
