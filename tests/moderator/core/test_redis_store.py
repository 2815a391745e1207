"""The Redis layer on a real Redis: the batch script and its pipelined fallback write the same state;
the verdict cache round-trips typed cores and refuses foreign shapes; the id registry keeps revisions."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from moderator.core.cache import KEY_PREFIX, VerdictCache, cache_key
from moderator.core.redis_store import RedisStore
from moderator.core.registry import IdRegistry, Revision, id_key
from moderator.core.verdict_core import CORE_SCHEMA, VerdictCore
from moderator.metrics import Metrics
from topics import LABEL_KEYS


def _core(x: float, unsafe: float | None = None) -> VerdictCore:
    return VerdictCore.of([x] * len(LABEL_KEYS), unsafe, truncated=x > 0.5)


def test_script_and_pipelined_writes_leave_identical_state(redis_server) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex
    written: dict[bool, list[tuple[bytes | None, int]]] = {}

    async def write(scripted: bool) -> None:
        store = RedisStore(redis_server.url, timeout_ms=2000)
        store._scripts_ok = scripted
        keys = [f"{tag}:{scripted}:{i}" for i in range(3)]
        try:
            await store.set_many("set", [(keys[0], b"a"), (keys[2], b"c")], ttl_s=60)
            assert store._scripts_ok is scripted
        finally:
            await store.close()
        plain = redis.Redis.from_url(redis_server.url)
        written[scripted] = [(plain.get(k), plain.ttl(k)) for k in keys]

    for scripted in (True, False):
        asyncio.run(write(scripted))
    assert [v for v, _ in written[True]] == [v for v, _ in written[False]] == [b"a", None, b"c"]
    for path in (True, False):
        ttls = [t for _, t in written[path]]
        assert 55 <= ttls[0] <= 60 and ttls[1] == -2 and 55 <= ttls[2] <= 60


def test_a_server_refusing_scripts_falls_back_to_pipelined_commands(redis_server) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        store = RedisStore(redis_server.url, timeout_ms=2000)

        async def refused(*args: object, **kwargs: object) -> None:
            raise aioredis.ResponseError("NOPERM this user has no permissions to run the 'evalsha' command")

        store._set_script = refused
        key = f"refused:{uuid.uuid4().hex}"
        try:
            await store.set_many("set", [(key, b"v")], ttl_s=60)
            assert store._scripts_ok is False and store.available
            assert await store.get_many("get", [key]) == [b"v"]
        finally:
            await store.close()

    asyncio.run(run())


def test_cache_round_trips_typed_cores_and_refuses_other_shapes(redis_server) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        metrics = Metrics()
        store = RedisStore(redis_server.url, timeout_ms=2000, metrics=metrics)
        cache = VerdictCache(store, ttl_s=60, metrics=metrics)
        tag = uuid.uuid4().hex
        keys = [cache_key("m", "p", "comment", f"{tag}-{i}") for i in range(4)]
        assert keys[0].startswith(KEY_PREFIX) and CORE_SCHEMA in keys[0]
        try:
            await cache.set_many([(keys[0], _core(0.25)), (keys[1], _core(0.75, 0.5))])
            # a value written by code with a renamed field, under this schema's key: refused, not half-read
            renamed = {"v": CORE_SCHEMA, "probs": [0.1] * len(LABEL_KEYS), "unsafe": None, "truncated": False}
            redis.Redis.from_url(redis_server.url).set(keys[2], orjson.dumps(renamed))
            got = await cache.get_many(keys)
            assert got == [_core(0.25), _core(0.75, 0.5), None, None]
            assert metrics.registry.get_sample_value("moderator_cache_errors_total", {"op": "decode"}) == 1
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
def test_registry_keeps_the_latest_revision_per_id(redis_server, shared: bool) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        store = RedisStore(redis_server.url, timeout_ms=2000) if shared else None
        tag = uuid.uuid4().hex
        a, b = id_key("comments", f"{tag}-a"), id_key("comments", f"{tag}-b")
        try:
            writer = IdRegistry(store, ttl_s=60)
            assert await writer.latest([a, b]) == [None, None]
            r1, r2, r9 = Revision("r1", "t/0", 1), Revision("r2", "t/0", 2), Revision("r9", "t/3", 9)
            await writer.record([(a, r1), (a, r2), (b, r9)])
            assert await writer.latest([a, b]) == [r2, r9]
            # another process sees them only through Redis
            reader = IdRegistry(store, ttl_s=60)
            assert await reader.latest([a, b]) == ([r2, r9] if shared else [None, None])
        finally:
            if store is not None:
                await store.close()

    asyncio.run(run())


def test_commands_packed_in_c_are_byte_for_byte_what_redis_py_packs() -> None:
    from redis.asyncio.connection import Connection

    from moderator.core.redis_store import packing_in_c

    packed_class = packing_in_c(Connection)
    assert packed_class is not Connection, "hiredis is a dependency: the C packer must be in use"
    python, c = Connection(), packed_class()
    for args in (
        ("MGET", "mod:a", "mod:ü", b"\x00raw"),
        ("EVALSHA", "f" * 40, 2, "k1", "k2", b"v1", 86400, memoryview(b"v2"), 3600),
        ("SCRIPT LOAD", "return 1"),
        (b"CONFIG GET", "maxmemory"),
        ("SET", "k", 1.5, "EX", 10),
    ):
        assert b"".join(c.pack_command(*args)) == b"".join(python.pack_command(*args)), args


def test_plain_arguments_skip_the_encoder_and_pack_the_same_bytes() -> None:
    import pytest
    from redis.asyncio.connection import Connection
    from redis.exceptions import DataError

    from moderator.core.redis_store import packing_in_c

    packed_class = packing_in_c(Connection)
    python, c = Connection(), packed_class()
    calls: list[object] = []
    base = type(c.encoder)

    class CountingEncoder(base):  # type: ignore[valid-type,misc]
        def encode(self, value: object) -> object:
            calls.append(value)
            return super().encode(value)

    c.encoder = CountingEncoder(c.encoder.encoding, c.encoder.encoding_errors, c.encoder.decode_responses)
    args = ("EVALSHA", "f" * 40, 2, "mod:키", "k2", b"\x00\xff", 86400, -1, 2**70, "")
    assert b"".join(c.pack_command(*args)) == b"".join(python.pack_command(*args))
    assert calls == [], "str, bytes and int need no per-argument encoder call"
    # anything else takes redis-py's encoder: a bool is refused as redis-py refuses it
    with pytest.raises(DataError):
        c.pack_command("SET", "k", True)
    # another text encoding: every argument goes through the encoder, same bytes as redis-py
    python_latin, c_latin = Connection(encoding="latin-1"), packed_class(encoding="latin-1")
    args = ("SET", "mod:é", "é", 5)
    assert b"".join(c_latin.pack_command(*args)) == b"".join(python_latin.pack_command(*args))
    assert b"".join(c_latin.pack_command(*args)) != b"".join(c.pack_command(*args))
