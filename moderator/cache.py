"""Redis verdict cache: versioned hashed keys, one MGET and one pipelined SET per batch.

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
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(key, orjson.dumps(value), ex=self._ttl)
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
            async with self._client.pipeline(transaction=False) as pipe:
                for key, position in claims:
                    pipe.set(key, position, nx=True, ex=self._dedupe_ttl)
                    pipe.get(key)
                results = await pipe.execute()
            holders: list[str | None] = []
            for i, (_, position) in enumerate(claims):
                current = results[2 * i + 1]
                holder = current.decode() if isinstance(current, bytes) else current
                holders.append(holder if holder is not None and holder != position else None)
            return holders

        fallback: list[str | None] = [None] * len(claims)
        return await self._call("claim", run, fallback)

    async def ping(self) -> bool:
        return bool(await self._call("ping", self._client.ping, False))

    async def close(self) -> None:
        await self._client.aclose()
