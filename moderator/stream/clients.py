"""Plain aiokafka helpers for the CLI's ``produce`` and ``tail`` and for the demo."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from moderator.exits import BrokerUnreachable, UsageError
from moderator.settings import bootstrap_servers
from topics import loads


def servers(broker: str) -> str:
    """aiokafka's bootstrap form of ``broker``; a malformed URL is the user's to fix."""
    try:
        return bootstrap_servers(broker)
    except ValueError as exc:
        raise UsageError(str(exc), "write the broker as kafka://host:port[,host:port]") from None


async def start_client(client: AIOKafkaProducer | AIOKafkaConsumer, broker: str) -> None:
    """Start a client; a broker that cannot be reached is a user's problem, not a traceback.

    A client whose ``start`` failed is stopped here, so aiokafka does not warn about an unclosed one.
    """
    # aiokafka logs each refused connection at ERROR before raising: the one line below says it all
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(max(level, logging.CRITICAL) if not kafka_log.isEnabledFor(logging.DEBUG) else level)
    try:
        await client.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await client.stop()
        raise BrokerUnreachable(
            f"cannot reach the Kafka broker at {broker} ({type(exc).__name__})",
            "start the broker, or pass --broker / set MODERATOR_BROKER to where it runs",
        ) from None
    finally:
        kafka_log.setLevel(level)


async def produce_lines(
    broker: str, topic: str, lines: Iterable[bytes], *, key_field: str = "id", progress: Any = None
) -> int:
    """Send each non-empty line as one record, keyed by its ``id`` when it has one; waits for all acks."""
    producer = AIOKafkaProducer(bootstrap_servers=servers(broker), acks="all", linger_ms=5)
    await start_client(producer, broker)
    sent = 0
    try:
        futures = []
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            key = None
            try:
                data = loads(line)
                if isinstance(data, dict) and isinstance(data.get(key_field), str):
                    key = data[key_field].encode("utf-8")
            except ValueError:
                pass  # malformed lines are sent as they are: the worker dead-letters them
            futures.append(await producer.send(topic, line, key=key))
            sent += 1
            if progress is not None:
                progress.update(1)
            if len(futures) >= 1000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def follow(
    broker: str, topics: list[str], *, from_beginning: bool = True, idle_timeout_s: float | None = None
) -> AsyncIterator[tuple[str, bytes | None, bytes]]:
    """Yield (topic, key, value) from ``topics`` with no consumer group (nothing committed)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=servers(broker),
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await start_client(consumer, broker)
    last = time.monotonic()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            for tp, records in batch.items():
                for record in records:
                    yield tp.topic, record.key, record.value or b""
    finally:
        await consumer.stop()
