"""``moderator replay``: re-feed dead-lettered records to their input topics.

Reads the ``dead-letter`` topic from its start to its end as of the call (no consumer group, nothing
committed), keeps the dead letters matching the filters (reasons, a time range on the dead letter's
``ts``), and produces each one's original bytes back to the input topic it came from, keyed by its
id. A worker then scores it again: ids are recorded only once a verdict exists, so a record that
failed on a model error gets its verdict once the model is fixed. What cannot be replayed faithfully
is skipped and counted: a dead letter whose original was truncated (the record was over the size
limit) and one naming no input topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from moderator.stream.clients import servers, start_client
from topics import DeadLetter, TopicNames
from topics.records import ORIGINAL_TRUNCATED

log = logging.getLogger(__name__)

#: How long reading ``dead-letter`` may see no record before its end offsets are reached.
IDLE_TIMEOUT_S = 30.0


class ReplayError(RuntimeError):
    """The dead-letter topic could not be read to its end."""


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    reasons: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None

    def matches(self, dead: DeadLetter) -> bool:
        if self.reasons and dead.reason not in self.reasons:
            return False
        if self.since is not None and dead.ts < self.since:
            return False
        return self.until is None or dead.ts < self.until


@dataclass
class ReplayReport:
    """What ``replay`` did: sent per (reason, topic); skipped per why; dead letters read in total."""

    read: int = 0
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = [f"read {self.read} dead letters; sent {sum(self.sent.values())}"]
        out += [f"  sent {n} {reason} → {topic}" for (reason, topic), n in sorted(self.sent.items())]
        out += [f"  skipped {n}: {why}" for why, n in sorted(self.skipped.items())]
        return out


def target_topic(dead: DeadLetter, topics: TopicNames) -> str | None:
    """The input topic a dead letter came from (its source), else the configured one for its kind."""
    inputs = (topics.comments, topics.replies)
    if dead.source is not None and dead.source.topic in inputs:
        return dead.source.topic
    if dead.kind == "comment":
        return topics.comments
    if dead.kind == "reply":
        return topics.replies
    return None


async def replay(
    broker: str, topics: TopicNames, keep: ReplayFilter, *, dry_run: bool = False
) -> ReplayReport:
    report = ReplayReport()
    consumer = AIOKafkaConsumer(bootstrap_servers=servers(broker), group_id=None, enable_auto_commit=False)
    producer = None if dry_run else AIOKafkaProducer(bootstrap_servers=servers(broker), acks="all")
    await start_client(consumer, broker)
    if producer is not None:
        try:
            await start_client(producer, broker)
        except BaseException:
            await consumer.stop()
            raise
    try:
        partitions = consumer.partitions_for_topic(topics.dead_letter)
        if partitions is None:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(topics.dead_letter) or set()
        assigned = [TopicPartition(topics.dead_letter, p) for p in sorted(partitions)]
        if not assigned:
            return report
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        # End offsets are a lower bound: some brokers (tansu) report the last batch's base offset, so
        # reading goes on past them until a poll comes back empty. Dead letters newer than this call
        # (a replayed record failing again) are left for the next replay, so replay never chases itself.
        ends = await consumer.end_offsets(assigned)
        log.info(
            "replay: reading %s up to %s", topics.dead_letter, {tp.partition: ends[tp] for tp in assigned}
        )
        started = time.time()
        acks = []
        idle_since = time.monotonic()
        positions = {tp: 0 for tp in assigned}
        while True:
            batch = await consumer.getmany(*assigned, timeout_ms=500, max_records=1000)
            if not batch:
                if all(positions[tp] >= ends[tp] for tp in assigned):
                    break
                if time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                    raise ReplayError(
                        f"{topics.dead_letter}: no records for {IDLE_TIMEOUT_S:.0f}s before its end offsets "
                        f"{ {tp.partition: ends[tp] for tp in assigned} } (broker unreachable?)"
                    )
                continue
            idle_since = time.monotonic()
            for tp, records in batch.items():
                for record in records:
                    positions[tp] = record.offset + 1
                    report.read += 1
                    acks += await _one(record.value or b"", topics, keep, report, producer, started)
        await asyncio.gather(*acks)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return report


async def _one(
    value: bytes,
    topics: TopicNames,
    keep: ReplayFilter,
    report: ReplayReport,
    producer: AIOKafkaProducer | None,
    started: float,
) -> list[asyncio.Future[object]]:
    try:
        dead = DeadLetter.from_dict(orjson.loads(value))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        report.skipped["not a dead-letter record"] += 1
        return []
    if not keep.matches(dead):
        return []
    if dead.ts >= started:
        report.skipped["dead-lettered after this replay started"] += 1
        return []
    topic = target_topic(dead, topics)
    if topic is None:
        report.skipped["no input topic (no source, no kind)"] += 1
        return []
    if ORIGINAL_TRUNCATED in dead.detail:
        report.skipped["original truncated (over the record size limit)"] += 1
        return []
    report.sent[(dead.reason, topic)] += 1
    if producer is None:
        return []
    key = dead.id.encode("utf-8") if dead.id else None
    return [await producer.send(topic, dead.original, key=key)]
