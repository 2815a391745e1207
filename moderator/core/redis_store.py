"""One Redis connection with outage tolerance, shared by the verdict cache and the id registry.

Redis is an optimisation: when it errors or is slower than ``timeout``, the call returns its
fallback, the outage is counted, and Redis is tried again after ``retry_s``. Batches use one command
each (MGET, or a Lua script of SETs), with pipelined commands where a server refuses scripts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis

from moderator.metrics import Metrics

_PACK: Callable[[Any], bytes] | None
try:
    from hiredis import pack_command as _PACK
except ImportError:  # pragma: no cover - a dependency (redis[hiredis]); pure Python packing without it
    _PACK = None

log = logging.getLogger(__name__)
T = TypeVar("T")

#: KEYS: keys; ARGV[2i - 1]: the value for KEYS[i], ARGV[2i]: its TTL (s). Per-key TTLs let the verdict
#: cache and the id registry write a batch in one script call.
_SET_LUA = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[2 * i - 1], 'EX', ARGV[2 * i])
end
return #KEYS
"""


#: Argument types hiredis packs byte for byte as redis-py's encoder does (bool, a subclass of int, is
#: not one: redis-py refuses it).
_PLAIN_ARGS = frozenset({str, bytes, int})


def _utf8_strict(encoder: Any) -> bool:
    """Whether ``encoder`` encodes text as hiredis does: UTF-8, strict errors."""
    encoding = str(getattr(encoder, "encoding", "")).lower().replace("_", "-")
    return encoding in ("utf-8", "utf8") and getattr(encoder, "encoding_errors", "") == "strict"


def packing_in_c(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` packing commands with hiredis (C) instead of redis-py's asyncio Python packer.

    redis-py uses hiredis to parse replies, and to pack commands only on its synchronous connections;
    a batch's MGET and write script carry several arguments per record, packed one by one in Python
    otherwise. Arguments are encoded by the connection's own encoder first, so what is sent is the same.
    """
    if _PACK is None or not hasattr(connection_class, "pack_command"):
        return connection_class
    pack: Callable[[Any], bytes] = _PACK

    class HiredisPacking(connection_class):
        def pack_command(self, *args: Any) -> list[bytes]:
            # as redis-py: a command name with spaces ("SCRIPT LOAD") is sent as separate words
            if isinstance(args[0], str):
                args = tuple(args[0].encode().split()) + args[1:]
            elif b" " in args[0]:
                args = tuple(args[0].split()) + args[1:]
            encoder = self.encoder
            if _PLAIN_ARGS.issuperset(map(type, args)) and _utf8_strict(encoder):
                # str, bytes and int (not bool) are what a batch's keys, values and TTLs are, and hiredis
                # encodes them exactly as redis-py's encoder does under UTF-8/strict: no Python call per
                # argument (a batch's MGET and write script carry several per record)
                return [pack(args)]
            encode = encoder.encode
            return [pack(tuple(bytes(a) if isinstance(a, memoryview) else a for a in map(encode, args)))]

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"HiredisPacking{connection_class.__name__}"
    return HiredisPacking


class RedisStore:
    def __init__(
        self,
        url: str,
        *,
        timeout_ms: int = 100,
        retry_s: float = 2.0,
        ssl_ca_certs: str = "",
        metrics: Metrics | None = None,
    ) -> None:
        self._timeout = timeout_ms / 1000.0
        kwargs: dict[str, Any] = {
            "socket_timeout": self._timeout,
            "socket_connect_timeout": max(self._timeout, 0.2),
            "retry_on_timeout": False,
        }
        if ssl_ca_certs:
            kwargs["ssl_ca_certs"] = ssl_ca_certs
        self._client = aioredis.from_url(url, **kwargs)
        pool = self._client.connection_pool
        pool.connection_class = packing_in_c(pool.connection_class)
        self._set_script = self._client.register_script(_SET_LUA)
        self._scripts_ok = True
        self._retry_s = retry_s
        self._down_until = 0.0
        self._closed = False
        self._metrics = metrics or Metrics()
        self._metrics.cache_up.set(1)
        self.was_down = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def call(self, op: str, fn: Callable[[], Awaitable[T]], fallback: T, rows: int = 0) -> T:
        """Run one Redis round trip; on an outage, a timeout or while backing off, return ``fallback``.

        ``rows`` is how many records the call serves: when it falls back they are counted in
        ``moderator_cache_uncached_total`` (scored without the cache).
        """
        if not self.available:
            if rows:
                self._metrics.cache_uncached.inc(rows)
            return fallback
        try:
            result = await asyncio.wait_for(fn(), self._timeout * 2)
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            self._metrics.cache_errors.labels(op=op).inc()
            self._metrics.cache_up.set(0)
            if not self.was_down:
                log.warning(
                    "redis %s failed (%s); continuing uncached, retrying in %.1fs",
                    op,
                    type(exc).__name__,
                    self._retry_s,
                )
            self.was_down = True
            self._down_until = time.monotonic() + self._retry_s
            if rows:
                self._metrics.cache_uncached.inc(rows)
            return fallback
        if self.was_down:
            log.info("redis is back; cache in use again")
            self.was_down = False
        self._metrics.cache_up.set(1)
        return result

    async def get_many(
        self, op: str, keys: Sequence[str], *, count_rows: bool = True, records: int | None = None
    ) -> list[bytes | str | None]:
        """One MGET; an outage reads as all missing (counted as uncached rows when ``count_rows``).

        ``records``: how many records the keys serve when a record has several keys (its verdict core
        and a human decision), so an outage counts records, not keys.
        """
        if not keys:
            return []
        missing: list[bytes | str | None] = [None] * len(keys)
        rows = (len(keys) if records is None else records) if count_rows else 0
        return await self.call(op, lambda: self._client.mget(list(keys)), missing, rows=rows)

    async def set_many(self, op: str, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        """``SET key value EX ttl`` for every item in one round trip (skipped during an outage)."""
        await self.set_each(op, [(key, value, ttl_s) for key, value in items])

    async def set_each(self, op: str, items: Sequence[tuple[str, bytes, int]]) -> None:
        """``SET key value EX ttl`` with each item's own TTL, all in one round trip (skipped in an outage)."""
        if not items:
            return

        async def run() -> None:
            keys = [k for k, _, _ in items]
            args: list[Any] = []
            for _, value, ttl_s in items:
                args += (value, ttl_s)
            if await self._scripted(self._set_script, keys, args) is not None:
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value, ttl_s in items:
                    pipe.set(key, value, ex=ttl_s)
                await pipe.execute()

        await self.call(op, run, None)

    async def _scripted(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a batch script (EVALSHA, loaded on first use); ``None`` where scripting is refused.

        One command per batch instead of one per record: redis-py spends ~15 µs of CPU packing and
        parsing each pipelined command, a large share of the worker's per-record cost
        (``bench.overhead``). A server that refuses Lua (ACLs, some managed offerings) gets the same
        commands pipelined from then on.
        """
        if not self._scripts_ok:
            return None
        try:
            return await script(keys=keys, args=args)
        except aioredis.ResponseError as exc:
            message = str(exc).lower()
            if not any(m in message for m in ("noperm", "unknown command", "disabled", "not allowed")):
                raise
            log.warning("redis refuses Lua scripts (%s); using pipelined commands", exc)
            self._scripts_ok = False
            return None

    async def ping(self) -> bool:
        return bool(await self.call("ping", self._client.ping, False))

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()
