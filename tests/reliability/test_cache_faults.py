"""Redis killed mid-stream and Redis slow: the stream goes on uncached, counted, and uses Redis again later."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.faults import (
    FaultReport,
    all_ids_done,
    counter_total,
    new_topics,
    read_outputs,
    tally,
    verdicts_by_id,
)
from tests.fixtures.tcp_proxy import TcpProxy
from tests.fixtures.worker import WorkerProcess
from tests.reliability.data import comments, send

FAST = {"batch_size": "128", "batch_window_ms": "20", "cache_retry_s": "1"}


def _phase(
    broker_url: str, worker: WorkerProcess, records: list[dict[str, Any]], timeout_s: float = 90
) -> dict[str, list[dict[str, Any]]]:
    """Send records, wait until each has a verdict; returns their verdicts by id."""
    topics = worker.topics
    send(broker_url, topics.comments, records)
    ids = [r["id"] for r in records]
    out = read_outputs(broker_url, topics, all_ids_done(topics, ids), timeout_s)
    verdicts = verdicts_by_id(out[topics.verdicts])
    missing = [i for i in ids if i not in verdicts]
    assert not missing, f"{len(missing)} ids without a verdict, e.g. {missing[:5]}\n{worker.log_tail()}"
    return {i: verdicts[i] for i in ids}


def _cached(verdicts: dict[str, list[dict[str, Any]]]) -> int:
    return sum(1 for vs in verdicts.values() if vs[0]["cached"])


@pytest.mark.slow
def test_redis_killed_mid_stream_goes_on_uncached_and_uses_the_cache_again_when_back(
    broker: Any,
    redis_server: Any,
    worker_factory: Callable[..., WorkerProcess],
    fresh_topics: Any,
    fault_report: FaultReport,
) -> None:
    topics, app_id = new_topics(fresh_topics, broker.url, partitions=2)
    worker = worker_factory(broker.url, topics, app_id, **FAST)
    before = comments(300, prefix="up")
    _phase(broker.url, worker, before)
    assert worker.metrics()["moderator_cache_up"] == 1

    redis_server.kill()
    try:
        during = comments(500, prefix="down", start=1000)
        t0 = time.monotonic()
        down = _phase(broker.url, worker, during)
        outage_s = time.monotonic() - t0
        metrics = worker.metrics()
        errors = counter_total(metrics, "moderator_cache_errors_total")
        assert errors > 0 and metrics["moderator_cache_up"] == 0
        status, health = worker.health()
        assert status == 200 and health["cache"] == "down"
        assert _cached(down) == 0
        # the same texts again while Redis is down: still verdicted, still uncached
        again_down = _phase(broker.url, worker, comments(100, prefix="down-again", start=1000))
        assert _cached(again_down) == 0
        uncached = worker.metrics()["moderator_cache_uncached_total"]
        assert uncached == len(down) + len(again_down), "every record scored without Redis is counted"
    finally:
        redis_server.start()

    # Redis is back (empty: no persistence). Fresh texts are scored and cached; repeats are cache hits.
    time.sleep(1.5)  # cache_retry_s
    fresh = comments(300, prefix="back", start=5000)
    _phase(broker.url, worker, fresh)
    hits_before = worker.metrics()["moderator_cache_hits_total"]
    repeat = _phase(broker.url, worker, comments(300, prefix="back-again", start=5000))
    metrics = worker.metrics()
    assert metrics["moderator_cache_up"] == 1
    assert _cached(repeat) == 300, "after Redis returns, repeated texts come from the cache"
    assert metrics["moderator_cache_hits_total"] - hits_before >= 300

    ids = [r["id"] for r in before + during] + [f"down-again-{i}" for i in range(1000, 1100)]
    ids += [f"back-{i}" for i in range(5000, 5300)] + [f"back-again-{i}" for i in range(5000, 5300)]
    out = read_outputs(broker.url, topics, all_ids_done(topics, ids), 30)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    fault_report.add(
        "Redis SIGKILLed mid-stream, restarted",
        **t.row(),
        cache_errors=int(errors),
        uncached_during_outage=int(uncached),
        cached_after_return=_cached(repeat),
        outage_phase_seconds=round(outage_s, 1),
    )
    assert t.lost == 0 and t.duplicates == 0 and t.dead_letters == 0
    assert worker.stop() == 0


@pytest.fixture
def redis_proxy(redis_server: Any) -> Iterator[TcpProxy]:
    with TcpProxy(redis_server.port) as proxy:
        yield proxy


@pytest.mark.slow
def test_slow_redis_times_out_quickly_and_the_stream_keeps_moving(
    broker: Any,
    redis_proxy: TcpProxy,
    worker_factory: Callable[..., WorkerProcess],
    fresh_topics: Any,
    fault_report: FaultReport,
) -> None:
    topics, app_id = new_topics(fresh_topics, broker.url, partitions=2)
    worker = worker_factory(
        broker.url,
        topics,
        app_id,
        redis_url=f"redis://{redis_proxy.url_host_port}/0",
        cache_timeout_ms="100",
        **FAST,
    )
    warm = comments(200, prefix="warm", start=20_000)
    t0 = time.monotonic()
    _phase(broker.url, worker, warm)
    normal_s = time.monotonic() - t0
    assert worker.metrics()["moderator_cache_up"] == 1

    redis_proxy.set_latency(3.0)  # every Redis reply 3 s late: 30x the 100 ms timeout
    slow_records = comments(600, prefix="slow", start=21_000)
    t0 = time.monotonic()
    slow = _phase(broker.url, worker, slow_records, timeout_s=60)
    slow_s = time.monotonic() - t0
    metrics = worker.metrics()
    errors = counter_total(metrics, "moderator_cache_errors_total")
    assert errors > 0 and metrics["moderator_cache_up"] == 0
    # 600 records in batches of <=128 with a 3 s Redis: a stream that waited on Redis would need >= 15 s
    assert slow_s < 12, f"slow Redis held the stream up: {slow_s:.1f}s"
    uncached = metrics["moderator_cache_uncached_total"]
    assert uncached == len(slow) and _cached(slow) == 0

    redis_proxy.restore()
    time.sleep(1.5)
    again = _phase(broker.url, worker, comments(200, prefix="warm-again", start=20_000))
    assert _cached(again) == 200, "after the latency goes, the cache is used again"

    ids = [r["id"] for r in warm + slow_records] + [f"warm-again-{i}" for i in range(20_000, 20_200)]
    out = read_outputs(broker.url, topics, all_ids_done(topics, ids), 30)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    fault_report.add(
        "Redis slow (+3 s per reply via proxy)",
        **t.row(),
        cache_errors=int(errors),
        seconds_600_with_slow_redis=round(slow_s, 1),
        seconds_200_normal=round(normal_s, 1),
        uncached_while_slow=int(uncached),
    )
    assert t.lost == 0 and t.duplicates == 0
    assert worker.stop() == 0
