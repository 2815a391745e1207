"""The obvious hand-rolled alternative to the worker: a plain aiokafka consume → produce loop.

    python -m bench.raw_loop MODE BROKER_URL IN_TOPIC OUT_TOPIC GROUP N

For each record: parse its JSON and write a verdict-shaped JSON record keyed by the input id. No
validation, no cache, no model. Two shapes of the loop:

* ``per-record``: what the aiokafka README leads to, ``async for record in consumer`` and
  ``await producer.send_and_wait(...)`` for each, offsets auto-committed;
* ``batched``: ``getmany`` up to 500 records, send them all, wait for the broker to ack the lot, then
  commit (at-least-once, like the worker). The fastest plain loop we know how to write.

Exits after ``N`` records and prints a JSON line with its own count and elapsed time.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from moderator.settings import bootstrap_servers


def verdict_for(value: bytes | None, topic: str, partition: int, offset: int) -> tuple[bytes, bytes]:
    doc = orjson.loads(value or b"{}")
    verdict = {
        "id": doc.get("id"),
        "kind": "comment",
        "flagged": False,
        "action": "allow",
        "scores": {"clean": 0.99},
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "ts": time.time(),
    }
    return str(doc.get("id")).encode(), orjson.dumps(verdict)


async def run(mode: str, broker: str, in_topic: str, out_topic: str, group: str, n: int) -> dict[str, float]:
    servers = bootstrap_servers(broker)
    consumer = AIOKafkaConsumer(
        in_topic,
        bootstrap_servers=servers,
        group_id=group,
        enable_auto_commit=mode == "per-record",
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0)
    await producer.start()
    await consumer.start()
    done = 0
    first = 0.0
    try:
        if mode == "per-record":
            async for record in consumer:
                if not first:
                    first = time.perf_counter()
                key, value = verdict_for(record.value, record.topic, record.partition, record.offset)
                await producer.send_and_wait(out_topic, value, key=key)
                done += 1
                if done >= n:
                    break
        while done < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                continue
            if not first:
                first = time.perf_counter()
            acks = []
            for records in batch.values():
                for record in records:
                    key, value = verdict_for(record.value, record.topic, record.partition, record.offset)
                    acks.append(await producer.send(out_topic, value, key=key))
            await asyncio.gather(*acks)
            await consumer.commit()
            done += len(acks)
    finally:
        elapsed = time.perf_counter() - first if first else 0.0
        await consumer.stop()
        await producer.stop()
    return {"records": float(done), "elapsed_s": elapsed}


def main(argv: list[str]) -> int:
    mode, broker, in_topic, out_topic, group, n = argv
    if mode not in ("per-record", "batched"):
        raise SystemExit(f"mode must be per-record or batched, not {mode!r}")
    result = asyncio.run(run(mode, broker, in_topic, out_topic, group, int(n)))
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
