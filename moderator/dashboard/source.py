"""Read input records back from their topic by (topic, partition, offset): the dashboard keeps no text.

One consumer without a group, assigned only the partitions a call needs; offsets close together are
read in one forward scan, far ones are reached by seeking. A record deleted by retention (or never
written) comes back as missing, not as an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from moderator.settings import bootstrap_servers
from topics import SourcePosition

log = logging.getLogger(__name__)

#: Read forward instead of seeking while the next wanted offset is at most this far ahead.
_SCAN_GAP = 200


class SourceReader:
    def __init__(self, broker: str, *, client_kwargs: dict[str, Any] | None = None) -> None:
        self._broker = broker
        self._kwargs = client_kwargs or {}
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self._broker),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=256 * 1024,
            **self._kwargs,
        )
        await self._consumer.start()

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def fetch(
        self, positions: Iterable[SourcePosition], timeout_s: float = 10.0
    ) -> dict[SourcePosition, bytes]:
        """The raw value at each position that still exists; missing ones are left out."""
        want: dict[TopicPartition, set[int]] = {}
        for pos in positions:
            want.setdefault(TopicPartition(pos.topic, pos.partition), set()).add(pos.offset)
        if not want:
            return {}
        assert self._consumer is not None, "start() first"
        consumer = self._consumer
        found: dict[SourcePosition, bytes] = {}
        async with self._lock:
            consumer.assign(list(want))
            for tp, offsets in want.items():
                consumer.seek(tp, min(offsets))
            deadline = time.monotonic() + timeout_s
            active = {tp for tp in want if want[tp]}
            while active and time.monotonic() < deadline:
                batch = await consumer.getmany(*active, timeout_ms=200, max_records=1000)
                for tp in list(active):
                    records = batch.get(tp, [])
                    for record in records:
                        if record.offset in want[tp]:
                            want[tp].discard(record.offset)
                            found[SourcePosition(tp.topic, tp.partition, record.offset)] = record.value or b""
                    position = await consumer.position(tp)
                    # offsets behind the position are gone (retention, compaction) or were never written
                    want[tp] = {o for o in want[tp] if o >= position}
                    if not records and not batch and want[tp]:
                        # nothing came back: if we stand at the end of the log, the rest was never written
                        end = (await consumer.end_offsets([tp]))[tp]
                        if position >= end:
                            want[tp] = set()
                    if not want[tp]:
                        active.discard(tp)
                        consumer.pause(tp)
                        continue
                    nearest = min(want[tp])
                    if nearest > position + _SCAN_GAP:
                        consumer.seek(tp, nearest)
            if active:
                log.warning(
                    "source reader: %d record(s) not read within %.0fs",
                    sum(map(len, want.values())),
                    timeout_s,
                )
            consumer.resume(*consumer.assignment())
        return found
