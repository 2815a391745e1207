"""Two workers join and leave one consumer group under load: no record lost, and the throughput dip.

    python -m bench.rebalance --messages 20000

A backlog of comments waits in a 4-partition topic. Worker A (the real worker, no-op models, real
Redis: ``bench.noop_worker``) starts draining it; once it has verdicted ``--join-after`` of them,
worker B joins the group (rebalance 1); once B has verdicted its share for ``--leave-after`` seconds,
B is stopped with SIGTERM (rebalance 2: it drains, commits and leaves) and A takes the rest. Then:

* **loss**: every input id must have a verdict on the output topic (at-least-once: a record
  re-delivered across a rebalance may have two, counted as duplicates);
* **dip**: verdicts per 0.5 s from the output records' broker timestamps; the slowest bucket around each
  rebalance against the median rate of A alone before the first one.

``--busy N`` runs N busy loops beside the workers for the whole run: the slowed-down machine under
which a commit cancelled halfway by a rebalance used to leave thousands of duplicates (3 of 6 runs at
``--messages 500000 --join-after 0.03 --leave-after 3 --busy 1`` before the fix, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson

from bench.common import (
    RESULTS_DIR,
    Section,
    Services,
    base_parser,
    bench_process,
    comment_values,
    create_topics,
    cycle,
    finish,
    fresh_topics,
    guard_training,
    invocation,
    load_data,
    produce_all,
    read_topic_keys,
    table,
    wait_until,
    worker_env,
)
from moderator.local.embedded import free_port

BUCKET_S = 0.5


def _worker(services: Services, names: Any, app_id: str, tag: str) -> Any:
    port = free_port()
    env = worker_env(
        services, app_id=app_id, topics=names, web_port=port, extra={"MODERATOR_TOPIC_PARTITIONS": "4"}
    )
    return bench_process(
        [sys.executable, "-m", "bench.noop_worker"], env, RESULTS_DIR / f"rebalance-{tag}.log", port
    )


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes spinning on a core each while the block runs, killed when it ends."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield loops
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait()


def duplicate_sources(
    records: list[tuple[bytes | None, bytes, int]], duplicated: set[bytes | None], events: dict[str, float]
) -> str:
    """Where the second verdicts of ``duplicated`` ids came from: per input partition, the offsets and
    the rebalance (the last event before the repeat's broker timestamp) they followed."""
    if not duplicated:
        return ""
    first_seen: set[bytes | None] = set()
    spans: dict[tuple[str, int], list[int]] = {}
    for key, value, ts in sorted(records, key=lambda r: r[2]):
        if key not in duplicated:
            continue
        if key not in first_seen:
            first_seen.add(key)
            continue
        after = [name for name, at in events.items() if at <= ts / 1000.0]
        source = orjson.loads(value).get("source") or {}
        spans.setdefault((after[-1] if after else "start", source.get("partition", -1)), []).append(
            source.get("offset", -1)
        )
    return "; ".join(
        f"{len(offsets)} of partition {partition} (offsets {min(offsets)}-{max(offsets)}) after '{event}'"
        for (event, partition), offsets in sorted(spans.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    )


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=1)
    parser.add_argument(
        "--messages", type=int, default=60000, help="backlog; must outlast B joining and leaving"
    )
    parser.add_argument("--join-after", type=float, default=0.2, help="share of the backlog A does alone")
    parser.add_argument("--leave-after", type=float, default=4.0, help="seconds B stays once it verdicts")
    parser.add_argument("--busy", type=int, default=0, help="busy loops beside the workers (load)")
    args = parser.parse_args(argv)
    if args.busy < 0:
        parser.error("--busy takes 0 or more")
    guard_training(args)
    data = load_data()
    values = comment_values(cycle(data.comments, args.messages), "rb")
    events: dict[str, float] = {}
    with Services() as services, busy_loops(args.busy):
        names = fresh_topics("rebalance")
        asyncio.run(create_topics(services.broker_url, names, 4))
        asyncio.run(produce_all(services.broker_url, names.comments, values))
        app_id = f"bench-rebalance-{time.monotonic_ns()}"
        a, b = _worker(services, names, app_id, "a"), _worker(services, names, app_id, "b")
        verdicts = f'topic="{names.verdicts}"'
        try:
            a.start()
            a.wait_ready()
            if not wait_until(
                lambda: a.metric("moderator_messages_out_total", verdicts) >= args.join_after * len(values),
                600,
                0.2,
            ):
                raise RuntimeError(f"worker A stalled:\n{a.log_tail()}")
            events["B starts"] = time.time()
            b.start()
            b.wait_ready()
            if not wait_until(lambda: b.metric("moderator_messages_out_total", verdicts) > 0, 120, 0.2):
                raise RuntimeError(f"worker B never got a partition:\n{b.log_tail()}")
            events["B verdicts"] = time.time()
            time.sleep(args.leave_after)
            events["B SIGTERM"] = time.time()
            b.signal(signal.SIGTERM)
            b_exit = b.wait(60)
            events["B gone"] = time.time()

            expected = {orjson.loads(v)["id"].encode() for v in values}
            records = asyncio.run(read_topic_keys(services.broker_url, names.verdicts, expected, 600))
        finally:
            b.stop()
            a.stop()
    keys = Counter(k for k, _, _ in records)
    missing = expected - set(keys)
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    where = duplicate_sources(records, {k for k, n in keys.items() if n > 1}, events)
    stamps = sorted(ts / 1000.0 for _, _, ts in records)
    t0 = stamps[0]
    buckets = Counter(int((t - t0) / BUCKET_S) for t in stamps)
    series = [(i * BUCKET_S, buckets.get(i, 0) / BUCKET_S) for i in range(max(buckets) + 1)]
    join_t, leave_t = events["B starts"] - t0, events["B SIGTERM"] - t0
    done_by_leave = sum(1 for t in stamps if t <= events["B gone"] + 2.0)
    if done_by_leave >= len(values):
        raise SystemExit(
            f"the backlog ran out before B had left ({done_by_leave} of {len(values)} verdicted): "
            "no dip can be measured; pass more --messages"
        )
    # the longest stretch with no verdict at all: the group's stop-the-world pause
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    pause = max(gaps) if gaps else 0.0
    alone = [r for t, r in series if t + BUCKET_S <= join_t] or [series[0][1]]
    base = statistics.median(alone)

    def dip(start: float, end: float) -> tuple[float, float]:
        window = [r for t, r in series if start <= t < end] or [0.0]
        return min(window), sum(1 for r in window if r < 0.5 * base) * BUCKET_S

    join_min, join_slow = dip(join_t, events["B verdicts"] - t0 + 2.0)
    leave_min, leave_slow = dip(leave_t, events["B gone"] - t0 + 2.0)
    rows = [
        ["A alone (before B joins)", f"{base:,.0f}", "-", "-"],
        ["B joins (rebalance 1)", f"{join_min:,.0f}", f"{join_min / base:.2f}×", f"{join_slow:.1f} s"],
        [
            "B leaves on SIGTERM (rebalance 2)",
            f"{leave_min:,.0f}",
            f"{leave_min / base:.2f}×",
            f"{leave_slow:.1f} s",
        ],
    ]
    body = table(
        ["phase", f"verdicts/s (slowest {BUCKET_S} s bucket)", "vs A alone", "time under half rate"], rows
    )
    body += (
        f"\n\n{len(values):,} comments in 4 partitions, no-op models, real Redis"
        + (f", {args.busy} busy loop(s) beside the workers" if args.busy else "")
        + f"; worker B exit code {b_exit}. "
        f"Longest stretch without any verdict: {pause:.1f} s. **Lost: {len(missing)}** of {len(values):,} input ids without a verdict; {duplicates} duplicate "
        "verdicts (re-delivered across a rebalance; consumers dedupe on the id)"
        + (f": {where}." if where else ".")
    )
    section = Section(
        "rebalance",
        "Rebalances under load: two workers joining and leaving",
        body,
        invocation("bench.rebalance", argv),
        [],
    )
    result = {
        "series": series,
        "events": {k: v - t0 for k, v in events.items()},
        "missing": len(missing),
        "duplicates": duplicates,
        "duplicates_where": where,
        "longest_pause_s": pause,
    }
    finish(args, section, result)
    print(
        orjson.dumps(
            {
                "lost": len(missing),
                "duplicates": duplicates,
                "base_per_s": base,
                "join_min_per_s": join_min,
                "leave_min_per_s": leave_min,
                "longest_pause_s": pause,
            }
        ).decode()
    )
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
