"""SIGKILL and SIGTERM mid-stream: every input id gets a verdict, nothing is lost, SIGTERM does not hang."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from moderator.settings import bootstrap_servers
from tests.fixtures.faults import (
    FaultReport,
    Tally,
    all_ids_done,
    counter_total,
    new_topics,
    read_outputs,
    tally,
)
from tests.fixtures.worker import WorkerProcess
from tests.reliability.data import comments, send
from tests.reliability.waiting import wait_for

PARTITIONS = 4
FAST = {"batch_size": "256", "batch_window_ms": "20"}


def verdicts_out(worker: WorkerProcess) -> float:
    return counter_total(worker.metrics(), "moderator_messages_out_total")


async def _committed(broker_url: str, group: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        out: dict[int, int] = {}
        for p in range(PARTITIONS):
            offset = await consumer.committed(TopicPartition(topic, p))
            out[p] = offset or 0
        return out
    finally:
        await consumer.stop()


def committed_offsets(broker_url: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets (next offset to read) per partition of ``topic`` (0 when none)."""
    return asyncio.run(_committed(broker_url, group, topic))


def assert_recovered(t: Tally, expected_ids: int, worker: WorkerProcess) -> None:
    """At-least-once after a fault: every id verdicted, none lost or dead-lettered, redeliveries agree."""
    assert t.lost == 0, f"lost {t.lost}: {t.missing}\n{worker.log_tail()}"
    assert t.verdicted_ids == expected_ids and t.dead_letters == 0
    assert t.inconsistent == 0, "a redelivered input must get the same verdict"


def wait_all_committed(broker_url: str, group: str, topic: str, total: int, timeout_s: float) -> None:
    """Wait until ``group`` has committed every one of the ``total`` offsets of ``topic``."""
    wait_for(
        lambda: sum(committed_offsets(broker_url, group, topic).values()) == total,
        timeout_s,
        "all offsets committed",
    )


@pytest.mark.slow
def test_sigkill_in_the_middle_of_10000_messages_loses_nothing(
    broker: Any, worker_factory: Callable[..., WorkerProcess], fresh_topics: Any, fault_report: FaultReport
) -> None:
    topics, app_id = new_topics(fresh_topics, broker.url, partitions=PARTITIONS)
    records = comments(10_000)
    started = time.monotonic()
    send(broker.url, topics.comments, records)
    # small batches for the first worker, so the kill lands mid-stream even on a fast machine
    first = worker_factory(
        broker.url, topics, app_id, batch_size="32", stream_batch_size="32", batch_window_ms="20"
    )
    # kill mid-way: once the broker holds a committed offset, with most inputs still to do
    at_kill = wait_for(
        lambda: (
            sum(committed_offsets(broker.url, app_id, topics.comments).values()) >= 1000
            and verdicts_out(first)
        ),
        180,
        "a commit before the kill",
        interval_s=0.1,
    )
    first.kill()
    # at-least-once: nothing at or past a committed offset, and every offset below it has its verdict
    committed = committed_offsets(broker.url, app_id, topics.comments)
    so_far = read_outputs(broker.url, topics, lambda o: False, timeout_s=3)[topics.verdicts]
    verdicted: dict[int, set[int]] = {}
    for _, value in so_far:
        source = orjson.loads(value)["source"]
        verdicted.setdefault(source["partition"], set()).add(source["offset"])
    assert 1000 <= sum(committed.values()) < len(records), committed
    for partition, offset in committed.items():
        unsent = set(range(offset)) - verdicted.get(partition, set())
        assert not unsent, (
            f"partition {partition} committed {offset} past unsent verdicts {sorted(unsent)[:5]}"
        )
    second = worker_factory(broker.url, topics, app_id, **FAST)
    ids = [r["id"] for r in records]
    out = read_outputs(broker.url, topics, all_ids_done(topics, ids), timeout_s=240)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    fault_report.add(
        "SIGKILL mid-stream, restart",
        **t.row(),
        verdicts_before_kill=int(at_kill),
        committed_at_kill=sum(committed.values()),
        verdicts_read_after_kill=len(so_far),
        seconds=round(time.monotonic() - started, 1),
    )
    assert_recovered(t, len(ids), second)
    # the restarted worker catches up to the end of every partition
    wait_all_committed(broker.url, app_id, topics.comments, len(ids), 30)
    assert second.stop() == 0


@pytest.mark.slow
def test_sigterm_drains_the_inflight_batch_commits_and_exits_in_bounded_time(
    broker: Any, worker_factory: Callable[..., WorkerProcess], fresh_topics: Any, fault_report: FaultReport
) -> None:
    topics, app_id = new_topics(fresh_topics, broker.url, partitions=PARTITIONS)
    records = comments(4000)
    send(broker.url, topics.comments, records)
    # small stream batches for the first worker, so the SIGTERM lands mid-stream with batches in flight
    first = worker_factory(broker.url, topics, app_id, **{**FAST, "stream_batch_size": "32"})
    wait_for(lambda: verdicts_out(first) >= 1000, 120, "1000 verdicts before SIGTERM")
    first.signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = first.wait(60)
    exit_s = time.monotonic() - t0
    assert rc == 0, first.log_tail()
    assert exit_s < 30, f"SIGTERM took {exit_s:.1f}s"
    assert "not drained" not in first.log_tail(20_000)

    # what the first worker committed is exactly what it verdicted: nothing verdicted was left uncommitted
    committed = committed_offsets(broker.url, app_id, topics.comments)
    ids = [r["id"] for r in records]
    before = read_outputs(broker.url, topics, lambda o: False, timeout_s=3)
    first_verdicts = [v for _, v in before[topics.verdicts]]
    assert sum(committed.values()) == len(first_verdicts) > 0, (committed, len(first_verdicts))

    second = worker_factory(broker.url, topics, app_id, **FAST)
    out = read_outputs(broker.url, topics, all_ids_done(topics, ids), timeout_s=180)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    fault_report.add(
        "SIGTERM mid-stream, restart",
        **t.row(),
        verdicts_before_sigterm=len(first_verdicts),
        committed_at_exit=sum(committed.values()),
        exit_seconds=round(exit_s, 1),
    )
    assert t.lost == 0, f"lost {t.lost}: {t.missing}\n{second.log_tail()}"
    assert t.duplicates == 0, "a drained, committed shutdown re-delivers nothing"
    assert t.inconsistent == 0
    assert second.stop() == 0
