"""Consume the topics into the sqlite index, and keep human decisions in the worker's verdict cache.

* ``verdicts.flagged`` → queue items (verdict + where the text is; no text).
* ``verdicts``, ``dead-letter`` → per-bucket counts for the overview (actions, categories, cache hits,
  dead-letter reasons) and the model/policy versions seen.
* ``reviews`` → decision history and item status; the latest decision per text is written to Redis
  under ``moderator.core.cache.human_key`` (no TTL), where the worker's one MGET per batch finds it.

Why the dashboard writes the overrides rather than each worker consuming ``reviews``: the reviews topic
is the source of truth and the index already follows it, so one writer keeps Redis in step; at start
every decision is written again (a flushed or replaced Redis heals), and a Redis outage only delays
them (pending hashes are retried). The worker's hot path stays one MGET.

Each poll's rows and the offsets that produced them commit in one sqlite transaction, so a restart
resumes exactly where the index stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from moderator.core.cache import human_key
from moderator.dashboard.source import SourceReader
from moderator.dashboard.store import Store, bucket_of
from moderator.settings import bootstrap_servers
from topics import SourcePosition, TopicNames
from topics.reviews import HumanVerdict, Review, decode_review
from topics.validation import InvalidRecord

log = logging.getLogger(__name__)

_ENRICH_BATCH = 500
_PARTITION_REFRESH_S = 30.0


def _meta_of(raw: bytes, kind: str) -> tuple[str | None, str | None]:
    """(channel or bot, language) of an input record; ``(None, None)`` for anything unreadable."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    channel = data.get("bot") if kind == "reply" else data.get("channel")
    meta = data.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    language = meta.get("lang") or meta.get("language")
    return (
        channel if isinstance(channel, str) else None,
        language if isinstance(language, str) else None,
    )


class Indexer:
    def __init__(
        self,
        store: Store,
        topics: TopicNames,
        broker: str,
        reader: SourceReader,
        *,
        redis_url: str = "",
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.topics = topics
        self._broker = broker
        self._reader = reader
        self._kwargs = client_kwargs or {}
        self._redis = aioredis.from_url(redis_url, socket_timeout=2.0) if redis_url else None
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._assigned: set[TopicPartition] = set()
        self._wake_overrides = asyncio.Event()
        self.bad_records = 0
        self.redis_ok: bool | None = None
        self.last_poll = 0.0

    @property
    def watched(self) -> list[str]:
        t = self.topics
        return [t.flagged, t.verdicts, t.dead_letter, t.reviews]

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self._broker),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            **self._kwargs,
        )
        await self._consumer.start()
        await self._assign()
        self.store.mark_all_overrides_pending()
        self._wake_overrides.set()
        for coro in (self._consume(), self._enrich(), self._write_overrides()):
            self._tasks.append(asyncio.create_task(coro))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._consumer is not None:
            await self._consumer.stop()
        if self._redis is not None:
            await self._redis.aclose()

    async def _assign(self) -> bool:
        """Assign every partition of the watched topics, resuming from the stored offsets."""
        assert self._consumer is not None
        consumer = self._consumer
        await consumer.topics()  # always a fresh metadata request (new topics, new partitions)
        tps: set[TopicPartition] = set()
        for topic in self.watched:
            for p in consumer.partitions_for_topic(topic) or ():
                tps.add(TopicPartition(topic, p))
        if tps == self._assigned:
            return False
        stored = self.store.offsets(self.watched)
        consumer.assign(sorted(tps))
        for tp in tps:
            next_offset = stored.get((tp.topic, tp.partition))
            if next_offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, next_offset)
        self._assigned = tps
        log.info("dashboard index: following %d partitions of %s", len(tps), ", ".join(self.watched))
        return True

    async def lag(self) -> dict[str, int]:
        """Records on each watched topic not yet in the index."""
        assert self._consumer is not None
        if not self._assigned:
            return {}
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(list(self._assigned)), 5.0)
        except (KafkaError, TimeoutError):
            return {}  # the broker is away: the page says nothing rather than failing
        stored = self.store.offsets(self.watched)
        out: dict[str, int] = defaultdict(int)
        for tp, end in ends.items():
            out[tp.topic] += max(0, end - stored.get((tp.topic, tp.partition), 0))
        return dict(out)

    # -- the consume loop ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._consumer is not None
        refreshed = time.monotonic()
        while True:
            try:
                if time.monotonic() - refreshed > _PARTITION_REFRESH_S or not self._assigned:
                    refreshed = time.monotonic()
                    await self._assign()
                    if not self._assigned:
                        await asyncio.sleep(1.0)
                        continue
                batch = await self._consumer.getmany(timeout_ms=500, max_records=5000)
                self.last_poll = time.time()
                if batch:
                    self.apply(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dashboard index: poll failed; retrying in 1s")
                await asyncio.sleep(1.0)

    def apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """One poll's records → rows, counts and offsets, in one transaction."""
        t = self.topics
        flagged: list[tuple[dict[str, Any], str, int, int]] = []
        reviews: list[Review] = []
        actions: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        categories: dict[tuple[int, str], int] = defaultdict(int)
        dead: dict[tuple[int, str], int] = defaultdict(int)
        versions: dict[tuple[str, str], list[float]] = {}
        offsets: dict[tuple[str, int], int] = {}
        for tp, records in batch.items():
            if not records:
                continue
            offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
            for record in records:
                value = record.value or b""
                try:
                    if tp.topic == t.reviews:
                        reviews.append(decode_review(value))
                        continue
                    data = orjson.loads(value)
                    if tp.topic == t.flagged:
                        if not isinstance(data.get("id"), str) or data.get("kind") not in (
                            "comment",
                            "reply",
                        ):
                            raise ValueError("not a verdict")
                        flagged.append((data, tp.topic, tp.partition, record.offset))
                    elif tp.topic == t.verdicts:
                        b = bucket_of(float(data["ts"]))
                        slot = actions[(b, str(data["kind"]), str(data["action"]))]
                        slot[0] += 1
                        slot[1] += bool(data.get("cached"))
                        slot[2] += data.get("human") is not None
                        for category in data.get("categories") or ():
                            categories[(b, str(category))] += 1
                        model = orjson.dumps(data.get("model") or {}, option=orjson.OPT_SORT_KEYS).decode()
                        key = (model, str(data.get("policy")))
                        ts = float(data["ts"])
                        seen = versions.get(key)
                        versions[key] = (
                            [min(seen[0], ts), max(seen[1], ts), seen[2] + 1] if seen else [ts, ts, 1]
                        )
                    elif tp.topic == t.dead_letter:
                        dead[(bucket_of(float(data.get("ts") or time.time())), str(data.get("reason")))] += 1
                except (
                    InvalidRecord,
                    orjson.JSONDecodeError,
                    ValueError,
                    KeyError,
                    TypeError,
                    AttributeError,
                ) as exc:
                    self.bad_records += 1
                    log.warning(
                        "dashboard index: skipped %s/%d/%d: %s", tp.topic, tp.partition, record.offset, exc
                    )
        with self.store.transaction() as db:
            if flagged:
                Store.add_flagged(db, flagged)
            hashes = Store.add_reviews(db, reviews) if reviews else set()
            Store.add_counts(
                db,
                {k: (v[0], v[1], v[2]) for k, v in actions.items()},
                dict(categories),
                dict(dead),
                {k: (v[0], v[1], int(v[2])) for k, v in versions.items()},
            )
            Store.save_offsets(db, offsets)
        if hashes:
            self._wake_overrides.set()

    def record_review(self, review: Review) -> None:
        """A decision this process just produced: index it now (the topic copy is then a no-op)."""
        with self.store.transaction() as db:
            Store.add_reviews(db, [review])
        self._wake_overrides.set()

    # -- enrichment: channel/bot and language from the input record ----------------------------------

    async def _enrich(self) -> None:
        while True:
            try:
                pending = self.store.pending_enrichment(_ENRICH_BATCH)
                if not pending:
                    await asyncio.sleep(1.0)
                    continue
                positions = {
                    item_id: SourcePosition(topic, partition, offset)
                    for item_id, topic, partition, offset in pending
                    if topic is not None and partition is not None and offset is not None
                }
                raw = await self._reader.fetch(positions.values())
                kinds = {
                    r[0]: r[1]
                    for r in self.store.db.execute(
                        f"SELECT id, kind FROM items WHERE id IN ({','.join('?' * len(pending))})",
                        [p[0] for p in pending],
                    )
                }
                rows = []
                for item_id, *_ in pending:
                    pos = positions.get(item_id)
                    value = raw.get(pos) if pos is not None else None
                    channel, language = (
                        _meta_of(value, kinds.get(item_id, "comment")) if value else (None, None)
                    )
                    rows.append((item_id, channel, language))
                self.store.set_enrichment(rows)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dashboard index: enrichment failed; retrying in 2s")
                await asyncio.sleep(2.0)

    # -- human decisions → Redis ---------------------------------------------------------------------

    async def _write_overrides(self) -> None:
        while True:
            await self._wake_overrides.wait()
            self._wake_overrides.clear()
            while True:
                hashes = self.store.pending_overrides()
                if not hashes or self._redis is None:
                    break
                if not await self.write_overrides(hashes):
                    await asyncio.sleep(2.0)  # Redis down: keep them pending, try again
                    self._wake_overrides.set()
                    break

    async def write_overrides(self, hashes: list[str]) -> bool:
        """Write the latest decision of each text to Redis; ``False`` (all left pending) on an outage."""
        if self._redis is None:
            return False
        values: list[tuple[str, bytes]] = []
        for digest in hashes:
            record = self.store.latest_review_for_hash(digest)
            if record is None:
                continue
            human = HumanVerdict.from_review(decode_review(orjson.dumps(record)))
            values.append((human_key(digest), orjson.dumps(human.to_dict())))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in values:
                    pipe.set(key, value)
                await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            if self.redis_ok is not False:
                log.warning(
                    "dashboard: Redis unavailable (%s); human decisions stay pending", type(exc).__name__
                )
            self.redis_ok = False
            return False
        self.redis_ok = True
        self.store.done_overrides(hashes)
        return True
