"""Redis verdict cache: versioned hashed keys; per batch one id claim, one MGET and one SET script.

Keys are ``moderator:v1:<blake2b(model ids, policy version, kind, normalised text[, prompt])>`` and
values are verdict cores (scores, action, categories): no raw text ever reaches Redis. Redis is an
optimisation: when it errors or is slower than ``timeout``, the batch goes on uncached, the outage is
counted, and Redis is tried again after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis

from moderator.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "moderator:v1:"
ID_PREFIX = "moderator:id:v1:"


#: KEYS: id keys; ARGV[1]: TTL (s); ARGV[i + 1]: the source position claiming KEYS[i]. Returns, per key,
#: the position holding it after the claim (its own position when the claim won).
_CLAIM_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local position = ARGV[i + 1]
  if redis.call('SET', key, position, 'NX', 'EX', ARGV[1]) then
    out[i] = position
  else
    out[i] = redis.call('GET', key) or ''
  end
end
return out
"""

#: KEYS: cache keys; ARGV[1]: TTL (s); ARGV[i + 1]: the value for KEYS[i].
_SET_LUA = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""


def cache_key(model_ids: str, policy_version: str, kind: str, text: str, prompt: str | None = None) -> str:
    h = hashlib.blake2b(digest_size=20)
    for part in (model_ids, policy_version, kind, text, prompt if prompt is not None else "\x00none"):
        encoded = part.encode("utf-8")
        h.update(len(encoded).to_bytes(4, "little"))
        h.update(encoded)
    return KEY_PREFIX + h.hexdigest()


def id_key(kind: str, record_id: str) -> str:
    return ID_PREFIX + hashlib.blake2b(f"{kind}\x00{record_id}".encode(), digest_size=16).hexdigest()


class VerdictCache:
    def __init__(
        self,
        url: str,
        *,
        ttl_s: int,
        timeout_ms: int = 100,
        retry_s: float = 2.0,
        dedupe_ttl_s: int = 24 * 3600,
        ssl_ca_certs: str = "",
        ids_url: str = "",
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
        # id claims may live on a Redis that never evicts (``ids_url``) while verdicts sit in an LRU one
        self._ids = aioredis.from_url(ids_url, **kwargs) if ids_url else self._client
        self._claim_script = self._ids.register_script(_CLAIM_LUA)
        self._set_script = self._client.register_script(_SET_LUA)
        self._scripts_ok = True
        self._ttl = ttl_s
        self._dedupe_ttl = dedupe_ttl_s
        self._retry_s = retry_s
        self._down_until = 0.0
        self._metrics = metrics or Metrics()
        self._metrics.cache_up.set(1)
        self.was_down = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]], fallback: T, rows: int = 0) -> T:
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

    async def get_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        """One MGET for the whole batch; a miss, a bad value or an outage all read as ``None``."""
        if not keys:
            return []
        missing: list[bytes | str | None] = [None] * len(keys)
        raw = await self._call("get", lambda: self._client.mget(list(keys)), missing, rows=len(keys))
        out: list[dict[str, Any] | None] = []
        for value in raw:
            if value is None:
                out.append(None)
                continue
            try:
                out.append(orjson.loads(value))
            except orjson.JSONDecodeError:
                out.append(None)
        return out

    async def set_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """One pipelined round trip of ``SET key value EX ttl`` for every fresh verdict."""
        if not items:
            return

        async def run() -> None:
            values = [orjson.dumps(value) for _, value in items]
            if (
                await self._scripted(self._set_script, [k for k, _ in items], [self._ttl, *values])
                is not None
            ):
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for (key, _), value in zip(items, values, strict=True):
                    pipe.set(key, value, ex=self._ttl)
                await pipe.execute()

        await self._call("set", run, None)

    async def claim_ids(self, claims: Sequence[tuple[str, str]]) -> list[str | None]:
        """Claim input ids for a source position; returns, per claim, the *other* position holding it.

        A redelivered record (same topic/partition/offset) re-claims its own id and is not a duplicate.
        While Redis is down nothing is claimed and nothing reads as a duplicate.
        """
        if not claims:
            return []

        async def run() -> list[str | None]:
            keys = [key for key, _ in claims]
            current = await self._scripted(
                self._claim_script, keys, [self._dedupe_ttl, *(p for _, p in claims)]
            )
            if current is None:
                async with self._ids.pipeline(transaction=False) as pipe:
                    for key, position in claims:
                        pipe.set(key, position, nx=True, ex=self._dedupe_ttl)
                        pipe.get(key)
                    current = (await pipe.execute())[1::2]
            holders: list[str | None] = []
            for (_, position), value in zip(claims, current, strict=True):
                holder = value.decode() if isinstance(value, bytes) else value
                holders.append(holder if holder and holder != position else None)
            return holders

        fallback: list[str | None] = [None] * len(claims)
        return await self._call("claim", run, fallback)

    async def _scripted(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a batch script (EVALSHA, loaded on first use); ``None`` where scripting is refused.

        One command per batch instead of one or two per record: redis-py spends ~15 µs of CPU packing
        and parsing each pipelined command (claiming 64 ids: ~2.1 ms as a pipeline, ~0.5 ms as a
        script, measured), a large share of the worker's per-record cost (``bench.overhead``). A server
        that refuses Lua (ACLs, some managed offerings) gets the same commands pipelined from then on.
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
        return bool(await self._call("ping", self._client.ping, False))

    async def close(self) -> None:
        await self._client.aclose()
        if self._ids is not self._client:
            await self._ids.aclose()
