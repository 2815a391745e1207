"""A burst of 100,000 messages: bounded memory (backpressure keeps the backlog in the broker), none lost."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.fixtures.faults import (
    FaultReport,
    RssSampler,
    all_ids_done,
    counter_total,
    new_topics,
    read_outputs,
    tally,
)
from tests.fixtures.worker import WorkerProcess, produce
from tests.reliability.data import korean_text

BURST = 100_000
DISTINCT_TEXTS = 10_000  # each text 10x: a burst of re-posted comments, as spam waves are
MiB = 1024 * 1024
#: the worker may grow this much over its idle, ready size while the whole burst goes through. What
#: legitimately grows: ONNX Runtime's arenas per model lane at the burst's batch shapes, the id
#: registry's in-process LRU (100,000 new ids here, capped at 200,000), 8 batches in flight per topic.
#: With the shipped multitask model (idle 322-401 MiB) eleven runs on 2026-12-02 grew 123-170 MiB, so the
#: bound of 160 MiB set for the earlier, smaller models failed one run in three; a leak of one verdict
#: per message (~1.5 KB, ~150 MiB over the burst) still lands well above this bound.
GROWTH_LIMIT = 200 * MiB


@pytest.mark.slow
def test_a_burst_of_100000_messages_keeps_memory_bounded_and_loses_nothing(
    broker: Any, worker_factory: Callable[..., WorkerProcess], fresh_topics: Any, fault_report: FaultReport
) -> None:
    topics, app_id = new_topics(fresh_topics, broker.url, partitions=4)
    worker = worker_factory(broker.url, topics, app_id, batch_size="256", batch_window_ms="20")
    time.sleep(1)
    with RssSampler(worker.pid, interval_s=0.2) as rss:
        time.sleep(1)
        baseline = rss.peak
        lags: list[float] = []
        stop = threading.Event()

        def poll_lag() -> None:
            while not stop.wait(1.0):
                with contextlib.suppress(OSError):
                    lags.append(counter_total(worker.metrics(), "moderator_consumer_lag"))

        poller = threading.Thread(target=poll_lag, daemon=True)
        poller.start()
        ids = [f"b-{i}" for i in range(BURST)]
        t0 = time.monotonic()
        asyncio.run(
            produce(
                broker.url,
                topics.comments,
                (
                    orjson.dumps({"id": rid, "text": korean_text(i % DISTINCT_TEXTS)})
                    for i, rid in enumerate(ids)
                ),
                [rid.encode() for rid in ids],
            )
        )
        produced_s = time.monotonic() - t0
        out = read_outputs(broker.url, topics, all_ids_done(topics, ids), timeout_s=300)
        total_s = time.monotonic() - t0
        stop.set()
        poller.join(timeout=5)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    peak = rss.peak
    fault_report.add(
        "burst of 100,000 messages",
        **t.row(),
        baseline_rss_mib=round(baseline / MiB, 1),
        peak_rss_mib=round(peak / MiB, 1),
        growth_mib=round((peak - baseline) / MiB, 1),
        max_lag_seen=int(max(lags, default=0)),
        produce_seconds=round(produced_s, 1),
        seconds_to_last_verdict=round(total_s, 1),
        msgs_per_second=round(BURST / total_s),
    )
    print(
        f"peak RSS {peak / MiB:.0f} MiB (baseline {baseline / MiB:.0f} MiB) over {len(rss.samples)} samples"
    )
    assert t.lost == 0 and t.verdicted_ids == BURST, t.missing
    assert t.inconsistent == 0
    assert peak - baseline < GROWTH_LIMIT, f"RSS grew {(peak - baseline) / MiB:.0f} MiB during the burst"
    # backpressure: the backlog waits in the broker (lag in the tens of thousands), not in the worker
    assert max(lags, default=0) > 10 * 1024
    assert worker.stop() == 0
