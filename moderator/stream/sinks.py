"""Emit a batch's verdicts, flagged verdicts and dead letters; return only once the broker acked all.

Offsets move only after ``emit`` returns (the agent acks its events afterwards), so a crash between
consume and ack re-delivers the batch instead of losing it. A failed send is retried with capped
back-off for as long as it takes: committing past unsent verdicts would lose them, and nothing else
can progress while the broker refuses writes (liveness reports the stall).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from moderator.core.pipeline import BatchResult
from moderator.metrics import Metrics
from topics import TopicNames, dumps

log = logging.getLogger(__name__)

#: ``send(topic, key, value)`` enqueues a record and returns an awaitable that resolves on broker ack.
SendFn = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[object]]]
#: ``send_many(records)`` enqueues them all; per record, in order: an awaitable that resolves on broker
#: ack, or the exception that kept it from being enqueued (``moderator.stream.adapter.send_batches``).
SendManyFn = Callable[[list[tuple[str, bytes | None, bytes]]], Awaitable[list[Any]]]

_MAX_BACKOFF_S = 5.0


class VerdictSink:
    def __init__(
        self,
        topics: TopicNames,
        send: SendFn,
        metrics: Metrics,
        *,
        max_attempts: int | None = None,
        send_many: SendManyFn | None = None,
    ) -> None:
        self.topics = topics
        self._send = send
        self._send_many = send_many
        self._metrics = metrics
        self._max_attempts = max_attempts

    def records(self, result: BatchResult) -> list[tuple[str, bytes | None, bytes]]:
        """Every output record of a batch: verdicts keyed by input id (consumers dedupe on it)."""
        out: list[tuple[str, bytes | None, bytes]] = []
        for verdict in result.verdicts:
            key = verdict.id.encode("utf-8")
            value = dumps(verdict.to_dict())
            out.append((self.topics.verdicts, key, value))
            if verdict.flagged:
                out.append((self.topics.flagged, key, value))
        for dead in result.dead_letters:
            dead_key = dead.id.encode("utf-8") if dead.id else None
            out.append((self.topics.dead_letter, dead_key, dumps(dead.to_dict())))
        return out

    async def emit(self, result: BatchResult) -> None:
        pending = self.records(result)
        attempt = 0
        while pending:
            attempt += 1
            failed: list[tuple[str, bytes | None, bytes]] = []
            acks: list[tuple[tuple[str, bytes | None, bytes], Awaitable[object]]] = []
            for record, ack in zip(pending, await self._enqueue(pending), strict=True):
                if isinstance(ack, BaseException):  # the producer refused to even enqueue
                    log.warning("send to %s failed: %s", record[0], ack)
                    failed.append(record)
                else:
                    acks.append((record, ack))
            results = await asyncio.gather(*(ack for _, ack in acks), return_exceptions=True)
            acked: Counter[str] = Counter()
            for (record, _), outcome in zip(acks, results, strict=True):
                if isinstance(outcome, BaseException):
                    if isinstance(outcome, asyncio.CancelledError):
                        raise outcome
                    failed.append(record)
                else:
                    acked[record[0]] += 1
            for topic, n in acked.items():
                self._metrics.messages_out.labels(topic=topic).inc(n)
            pending = failed
            if pending:
                if self._max_attempts is not None and attempt >= self._max_attempts:
                    raise SinkError(f"{len(pending)} records not acknowledged after {attempt} attempts")
                self._metrics.sink_retries.inc()
                delay = min(_MAX_BACKOFF_S, 0.1 * 2**attempt)
                log.error(
                    "broker did not ack %d records (attempt %d); retrying in %.1fs",
                    len(pending),
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _enqueue(self, records: list[tuple[str, bytes | None, bytes]]) -> list[Any]:
        """Hand every record to the producer: per record, its ack awaitable or the enqueue error."""
        if self._send_many is not None:
            try:
                return await self._send_many(records)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return [exc] * len(records)
        out: list[Any] = []
        for record in records:
            try:
                out.append(await self._send(*record))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                out.append(exc)
        return out


class SinkError(RuntimeError):
    pass
