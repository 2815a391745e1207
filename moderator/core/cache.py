"""Redis verdict cache: verdict cores of repeat texts, keyed by a hash of (models, policy, content).

Keys are ``moderator:v2:<core schema>:<blake2b(model ids, policy version, kind, normalised text[,
prompt])>``; values are ``VerdictCore``s, so no raw text ever reaches Redis. The core schema in the
key means entries of another core shape are never read (see ``moderator.core.verdict_core``); a value
that does not decode as this shape is counted (``moderator_cache_errors_total{op="decode"}``) and read
as a miss.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from moderator.core.redis_store import RedisStore
from moderator.core.verdict_core import CORE_SCHEMA, CoreSchemaError, VerdictCore
from moderator.metrics import Metrics
from topics.reviews import HumanVerdict

log = logging.getLogger(__name__)

KEY_PREFIX = f"moderator:v2:{CORE_SCHEMA}:"
#: Human decisions (written by the dashboard, no TTL): keyed by ``topics.reviews.content_hash``, so they
#: hold across model and policy versions.
HUMAN_PREFIX = "moderator:human:v1:"


def cache_key(model_ids: str, policy_version: str, kind: str, text: str, prompt: str | None = None) -> str:
    return cache_key_with(cache_key_prefix(model_ids, policy_version, kind), text, prompt)


#: Stored verdict cores kept decoded (``VerdictCache.decode_many``): ~1 KiB each.
DECODED_MEMO = 8192


def cache_key_prefix(model_ids: str, policy_version: str, kind: str) -> Any:
    """The hash state after (models, policy, kind): a batch copies it per record instead of re-hashing."""
    h = hashlib.blake2b(digest_size=20)
    _feed(h, model_ids)
    _feed(h, policy_version)
    _feed(h, kind)
    return h


def cache_key_with(prefix: Any, text: str, prompt: str | None = None) -> str:
    """``cache_key`` from a ``cache_key_prefix`` state and the normalised text(s)."""
    h = prefix.copy()
    _feed(h, text)
    _feed(h, prompt if prompt is not None else "\x00none")
    return KEY_PREFIX + h.hexdigest()


def cache_key_of_parts(prefix: Any, parts: bytes) -> str:
    """``cache_key_with`` from ``topics.text.content_parts`` (the texts encoded once per record)."""
    h = prefix.copy()
    h.update(parts)
    return KEY_PREFIX + h.hexdigest()


def _feed(h: Any, part: str) -> None:
    encoded = part.encode("utf-8")
    h.update(len(encoded).to_bytes(4, "little"))
    h.update(encoded)


def human_key(digest: str) -> str:
    return HUMAN_PREFIX + digest


class VerdictCache:
    def __init__(self, store: RedisStore, *, ttl_s: int, metrics: Metrics | None = None) -> None:
        self.store = store
        self._ttl = ttl_s
        self._metrics = metrics or Metrics()
        self._decoded: dict[bytes | str, VerdictCore] = {}

    @property
    def available(self) -> bool:
        """Up for health reports: not backing off *and* the last round trip succeeded (once the back-off
        window passes, a Redis that failed last is still down until a call gets through)."""
        return self.store.available and not self.store.was_down

    async def get_many(self, keys: Sequence[str]) -> list[VerdictCore | None]:
        """One MGET for the whole batch; a miss, a foreign value or an outage all read as ``None``."""
        return self.decode_many(await self.store.get_many("get", keys))

    def decode_many(self, values: Sequence[bytes | str | None]) -> list[VerdictCore | None]:
        """Stored values → cores; a foreign value is counted and read as a miss.

        A hit is a repeat, so the same stored bytes come back again and again: the last
        ``DECODED_MEMO`` decoded values are kept (cores are immutable), not parsed and checked each time.
        """
        out: list[VerdictCore | None] = []
        memo = self._decoded
        for value in values:
            if value is None:
                out.append(None)
                continue
            core = memo.get(value)
            if core is not None:
                out.append(core)
                continue
            try:
                core = VerdictCore.from_bytes(value)
                if len(memo) >= DECODED_MEMO:
                    del memo[next(iter(memo))]  # the oldest entry
                memo[value] = core
                out.append(core)
            except CoreSchemaError as exc:
                self._metrics.cache_errors.labels(op="decode").inc()
                log.warning("cached verdict core refused (%s); scoring again", exc)
                out.append(None)
        return out

    async def get_with_human(
        self, keys: Sequence[str], human_keys: Sequence[str]
    ) -> tuple[list[VerdictCore | None], list[HumanVerdict | None]]:
        """One MGET for a batch's verdict cores and the human decisions on its texts.

        A human decision that does not decode is read as none (and logged): it never breaks a batch.
        """
        values = await self.store.get_many("get", [*keys, *human_keys], records=len(keys))
        return self.decode_with_human(values, len(keys))

    def decode_with_human(
        self, values: Sequence[bytes | str | None], n: int
    ) -> tuple[list[VerdictCore | None], list[HumanVerdict | None]]:
        """``n`` stored cores then ``n`` human decisions (one MGET's values) → cores, decisions."""
        cores = self.decode_many(values[:n])
        humans: list[HumanVerdict | None] = []
        for value in values[n:]:
            decided = None
            if value is not None:
                try:
                    decided = HumanVerdict.from_dict(orjson.loads(value))
                except orjson.JSONDecodeError:
                    decided = None
                if decided is None:
                    self._metrics.cache_errors.labels(op="decode").inc()
                    log.warning("human decision in the cache refused (not a decision); using the models")
            humans.append(decided)
        return cores, humans

    async def set_many(self, items: Sequence[tuple[str, VerdictCore]]) -> None:
        """One round trip of ``SET key core EX ttl`` for every fresh verdict core."""
        await self.store.set_each("set", self.entries(items))

    def entries(self, items: Sequence[tuple[str, VerdictCore]]) -> list[tuple[str, bytes, int]]:
        """(key, stored value, TTL) for each core, for a write shared with the id registry."""
        ttl = self._ttl
        return [(key, core.to_bytes(), ttl) for key, core in items]
