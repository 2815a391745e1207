"""Broker unreachable at start, lost mid-run, hung (liveness): bounded retries, no loss, resume in place.

The broker sits behind :class:`~tests.fixtures.tcp_proxy.TcpProxy` (it advertises the proxy's port), so
cutting or freezing the proxy takes the network away while tansu keeps its topics, offsets and groups.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from moderator.local.embedded import free_port
from moderator.stream.worker import EXIT_SHUTDOWN_TIMEOUT, SHUTDOWN_TIMEOUT_S
from tests.fixtures.faults import (
    FaultReport,
    ProxiedBroker,
    all_ids_done,
    counter_total,
    new_topics,
    read_outputs,
    tally,
)
from tests.fixtures.worker import WorkerProcess
from tests.reliability.data import comments, send
from tests.reliability.waiting import wait_for

FAST = {"batch_size": "128", "batch_window_ms": "20"}


def verdicts_out(worker: WorkerProcess) -> float:
    return counter_total(worker.metrics(), "moderator_messages_out_total")


def committed_total(worker: WorkerProcess) -> float:
    return counter_total(worker.metrics(), "moderator_committed_offset")


@pytest.mark.slow
def test_broker_unreachable_at_start_retries_with_logs_stays_unready_then_consumes(
    broker_proxy: ProxiedBroker,
    worker_factory: Callable[..., WorkerProcess],
    fresh_topics: Any,
    fault_report: FaultReport,
) -> None:
    pb = broker_proxy
    topics, app_id = new_topics(fresh_topics, pb.url, partitions=2)
    pb.proxy.cut()
    worker = worker_factory(pb.url, topics, app_id, wait_ready=False, broker_wait_s="90", **FAST)
    wait_for(lambda: "not reachable yet" in worker.log_tail(20_000), 60, "a logged broker retry")
    # alive and retrying (no crash loop), not ready
    status, health = worker.health()
    assert status == 200 and health["stage"] == "waiting for broker"
    assert worker.get("/ready")[0] == 503
    time.sleep(4)
    assert worker.alive(), worker.log_tail()
    retries = worker.log_tail(50_000).count("not reachable yet")

    pb.proxy.restore()
    t0 = time.monotonic()
    worker.wait_ready(90)
    ready_s = time.monotonic() - t0
    records = comments(500, prefix="late")
    send(pb.url, topics.comments, records)
    ids = [r["id"] for r in records]
    out = read_outputs(pb.url, topics, all_ids_done(topics, ids), 90)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    fault_report.add(
        "broker unreachable at start (proxy refusing), then back",
        **t.row(),
        retry_log_lines=retries,
        seconds_to_ready_after_return=round(ready_s, 1),
    )
    assert t.lost == 0 and t.duplicates == 0
    assert worker.stop() == 0


def test_broker_never_reachable_exits_nonzero_after_bounded_logged_retries(
    worker_factory: Callable[..., WorkerProcess], fresh_topics: Any
) -> None:
    topics = fresh_topics().topic_names()
    worker = worker_factory(
        f"kafka://127.0.0.1:{free_port()}", topics, "nobody", wait_ready=False, broker_wait_s="3"
    )
    t0 = time.monotonic()
    rc = worker.wait(90)
    log = worker.log_tail(20_000)
    assert rc == 3, log
    assert "unreachable after" in log and "Fix: start the broker or set MODERATOR_BROKER" in log
    assert "Traceback" not in log
    assert time.monotonic() - t0 < 60


@pytest.mark.slow
def test_broker_lost_mid_run_resumes_from_committed_offsets_without_loss(
    broker_proxy: ProxiedBroker,
    worker_factory: Callable[..., WorkerProcess],
    fresh_topics: Any,
    fault_report: FaultReport,
) -> None:
    pb = broker_proxy
    topics, app_id = new_topics(fresh_topics, pb.url, partitions=4)
    records = comments(4000)
    send(pb.url, topics.comments, records)
    worker = worker_factory(pb.url, topics, app_id, **FAST)
    at_cut = wait_for(lambda: (n := verdicts_out(worker)) >= 1000 and n, 120, "1000 verdicts before the cut")
    pb.proxy.cut()
    outage_s = 12.0  # longer than the 10 s session timeout: the group forgets the member
    time.sleep(outage_s)
    assert worker.alive(), worker.log_tail()
    pb.proxy.restore()
    t0 = time.monotonic()
    more = comments(500, prefix="after", start=50_000)
    send(pb.url, topics.comments, more)
    ids = [r["id"] for r in records + more]
    out = read_outputs(pb.url, topics, all_ids_done(topics, ids), 180)
    recovered_s = time.monotonic() - t0
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    fault_report.add(
        "broker connection cut mid-run for 12 s (proxy), then back",
        **t.row(),
        verdicts_before_cut=int(at_cut),
        seconds_to_finish_after_return=round(recovered_s, 1),
        sink_retries=int(worker.metrics().get("moderator_sink_retries_total", 0)),
    )
    assert t.lost == 0, f"lost {t.lost}: {t.missing}\n{worker.log_tail()}"
    assert t.inconsistent == 0
    assert worker.alive(), "the worker rides out a broker outage in place"
    assert worker.stop() == 0


@pytest.mark.slow
def _freeze_until_stalled(
    pb: ProxiedBroker, worker: WorkerProcess, send_backlog: Callable[[], None]
) -> tuple[float, dict[str, Any]]:
    """Produce a backlog, freeze the broker (connections open, nothing moves: commits stop) as soon as
    the worker is verdicting it, and wait for ``/health`` 503; returns (seconds to detect, the 503 body).

    Lag is measured against the high-water mark the worker last fetched, so a worker that had verdicted
    and committed all it fetched by the moment the freeze landed has lag 0 and rightly stays live (it
    knows of nothing it is failing to do). The freeze therefore follows the per-batch output counter,
    not ``/health``: liveness samples lag every 5 s, and the tiny test models drain 20,000 records in
    about a second on a fast CPU, between two samples. Should the worker still drain its whole backlog
    before the freeze lands, the proxy is restored and it is tried again with a fresh backlog; lag above
    0 with no 503 fails, with the worker's own account.
    """
    for _ in range(5):
        before = verdicts_out(worker)
        send_backlog()
        wait_for(lambda b=before: verdicts_out(worker) > b, 60, "the worker verdicting the new backlog")
        pb.proxy.freeze()
        t0 = time.monotonic()
        try:
            _, health = wait_for(
                lambda: (h := worker.health())[0] == 503 and h, 40, "/health 503 while commits are stalled"
            )
            return time.monotonic() - t0, health
        except AssertionError as exc:
            status, now = worker.health()
            if now["lag"] > 0:
                raise AssertionError(
                    f"{exc}; /health {status} {now}; worker log:\n{worker.log_tail()}"
                ) from None
        pb.proxy.restore()
    raise AssertionError(f"the worker drained all it had read before every freeze; log:\n{worker.log_tail()}")


def test_liveness_turns_bad_when_commits_stall_with_lag_and_recovers(
    broker_proxy: ProxiedBroker,
    worker_factory: Callable[..., WorkerProcess],
    fresh_topics: Any,
    fault_report: FaultReport,
) -> None:
    pb = broker_proxy
    topics, app_id = new_topics(fresh_topics, pb.url, partitions=2)
    first = comments(1000, prefix="stall")
    send(pb.url, topics.comments, first)
    worker = worker_factory(
        pb.url, topics, app_id, stall_timeout_s="3", batch_size="64", batch_window_ms="20"
    )
    # commits move (and liveness sees them) before the fault
    wait_for(lambda: committed_total(worker) == len(first), 60, "the first 1000 committed")
    status, health = worker.health()
    assert status == 200 and health["live"]
    records = list(first)

    def send_backlog() -> None:
        # a backlog the worker cannot finish before the freeze lands (the 5,000 of an earlier version
        # could all be done and committed by the time the test froze the broker)
        more = comments(20_000, prefix="stall", start=len(records))
        send(pb.url, topics.comments, more)
        records.extend(more)

    detected_s, health = _freeze_until_stalled(pb, worker, send_backlog)
    assert health["live"] is False and health["lag"] > 0
    assert committed_total(worker) >= len(first)
    at_stall = worker.metrics()
    assert at_stall["moderator_live"] == 0
    lag_at_stall = health["lag"]
    pb.proxy.restore()
    t0 = time.monotonic()
    wait_for(lambda: worker.health()[0] == 200, 90, "/health 200 once commits move again")
    recovered_s = time.monotonic() - t0
    assert worker.metrics()["moderator_live"] == 1
    ids = [r["id"] for r in records]
    out = read_outputs(pb.url, topics, all_ids_done(topics, ids), 180)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    # lag = (high-water mark the worker last fetched) - committed offset, per partition; the worker's
    # high-water mark can trail the partition's end (backpressure pauses fetching), never pass it
    per_partition = Counter(orjson.loads(v)["source"]["partition"] for _, v in out[topics.verdicts])
    lags = []
    for partition, end in per_partition.items():
        labels = f'{{partition="{partition}",topic="{topics.comments}"}}'
        committed = at_stall.get(f"moderator_committed_offset{labels}", 0.0)
        lag = at_stall[f"moderator_consumer_lag{labels}"]
        assert committed + lag <= end, (partition, committed, lag, end)
        lags.append(lag)
    assert sum(lags) == lag_at_stall > 0
    fault_report.add(
        "broker hung (proxy frozen): liveness",
        **t.row(),
        lag_at_503=lag_at_stall,
        seconds_to_503=round(detected_s, 1),
        seconds_to_200_after_thaw=round(recovered_s, 1),
    )
    assert t.lost == 0 and t.inconsistent == 0
    assert worker.stop() == 0


@pytest.mark.slow
def test_sigterm_with_a_hung_broker_exits_within_the_shutdown_bound_and_loses_nothing(
    broker_proxy: ProxiedBroker,
    worker_factory: Callable[..., WorkerProcess],
    fresh_topics: Any,
    fault_report: FaultReport,
) -> None:
    pb = broker_proxy
    topics, app_id = new_topics(fresh_topics, pb.url, partitions=2)
    records = comments(3000, prefix="hung")
    send(pb.url, topics.comments, records)
    first = worker_factory(pb.url, topics, app_id, batch_size="64", batch_window_ms="20")
    wait_for(lambda: verdicts_out(first) >= 500, 120, "500 verdicts before the freeze")
    pb.proxy.freeze()  # the in-flight batch can neither be sent nor committed
    first.signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = first.wait(SHUTDOWN_TIMEOUT_S + 30)
    exit_s = time.monotonic() - t0
    log = first.log_tail(20_000)
    assert rc == EXIT_SHUTDOWN_TIMEOUT, log
    assert "shutdown did not finish within" in log
    assert exit_s < SHUTDOWN_TIMEOUT_S + 10, exit_s

    pb.proxy.restore()
    second = worker_factory(pb.url, topics, app_id, batch_size="64", batch_window_ms="20")
    ids = [r["id"] for r in records]
    out = read_outputs(pb.url, topics, all_ids_done(topics, ids), 180)
    t = tally(out[topics.verdicts], out[topics.dead_letter], ids)
    fault_report.add(
        "SIGTERM while the broker hangs (proxy frozen)",
        **t.row(),
        exit_code=rc,
        exit_seconds=round(exit_s, 1),
    )
    assert t.lost == 0 and t.inconsistent == 0
    assert second.stop() == 0
