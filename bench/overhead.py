"""Benchmark 2: what the faust worker costs per message, against a plain aiokafka loop.

Both sides read the same pre-filled ``comments`` topic (UnSmile dev comments, 4 partitions) on the same
local broker, in their own process, and write one verdict-shaped record per input:

* **raw loop**: ``bench.raw_loop``, aiokafka consume → produce → commit, nothing else;
* **faust worker**: ``bench.noop_worker``, the real worker (``moderator.app.create_app``: validation,
  normalisation, Redis dedupe/cache round trips, policy, verdict serialisation, at-least-once sinks)
  with the models replaced by ``bench.noop_model``'s constant ones.

Throughput is counted from the output records' broker timestamps (first → last verdict), so process
start-up and the consumer-group join are not in it. Rounds alternate the two sides.

    python -m bench.overhead --messages 20000 --rounds 3
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import orjson

from bench.common import (
    RESULTS_DIR,
    Proc,
    Section,
    Services,
    Stat,
    bar_with_range,
    base_parser,
    command_line,
    comment_values,
    create_topics,
    cycle,
    finish,
    fresh_topics,
    guard_training,
    img_dir_for,
    load_data,
    new_figure,
    produce_all,
    read_topic,
    save_figure,
    table,
    wait_until,
    worker_env,
)
from moderator.embedded import free_port

GOAL = 0.5


def rate(records: list[tuple[bytes | None, bytes, int]]) -> float:
    stamps = sorted(ts for _, _, ts in records)
    span = (stamps[-1] - stamps[0]) / 1000.0
    return (len(stamps) - 1) / span if span > 0 else float("nan")


def run_raw(services: Services, mode: str, values: list[bytes], partitions: int, tag: str) -> float:
    names = fresh_topics(f"raw{tag}")
    asyncio.run(create_topics(services.broker_url, names, partitions))
    asyncio.run(produce_all(services.broker_url, names.comments, values))
    argv = [
        sys.executable,
        "-m",
        "bench.raw_loop",
        mode,
        services.broker_url,
        names.comments,
        names.verdicts,
        f"raw-{tag}-{time.monotonic_ns()}",
        str(len(values)),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
    own = orjson.loads(out.stdout.strip().splitlines()[-1])
    records = asyncio.run(read_topic(services.broker_url, names.verdicts, len(values), 60))
    if len(records) < len(values):
        raise RuntimeError(f"raw loop wrote {len(records)} of {len(values)} records")
    print(
        f"  {mode} loop: {own['records']:.0f} records in {own['elapsed_s']:.2f}s (own clock)", file=sys.stderr
    )
    return rate(records)


def run_worker(
    services: Services, values: list[bytes], partitions: int, tag: str, extra_env: dict[str, str]
) -> tuple[float, dict[str, float]]:
    names = fresh_topics(f"faust{tag}")
    asyncio.run(create_topics(services.broker_url, names, partitions))
    asyncio.run(produce_all(services.broker_url, names.comments, values))
    port = free_port()
    env = worker_env(
        services,
        app_id=f"bench-overhead-{tag}-{time.monotonic_ns()}",
        topics=names,
        web_port=port,
        extra={"MODERATOR_TOPIC_PARTITIONS": str(partitions), **extra_env},
    )
    proc = Proc(
        [sys.executable, "-m", "bench.noop_worker"], env, RESULTS_DIR / f"overhead-worker-{tag}.log", port
    )
    proc.start()
    try:
        proc.wait_ready()

        def done() -> bool:
            proc.check_alive()
            return proc.metric("moderator_messages_out_total", f'topic="{names.verdicts}"') >= len(values)

        if not wait_until(done, 600, 0.5):
            raise RuntimeError(f"worker did not finish:\n{proc.log_tail()}")
        stats = {
            "batches": proc.metric("moderator_batch_size_count"),
            "rows": proc.metric("moderator_batch_size_sum"),
        }
    finally:
        proc.stop()
    records = asyncio.run(read_topic(services.broker_url, names.verdicts, len(values), 60))
    return rate(records), stats


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=3)
    parser.add_argument("--messages", type=int, default=20000, help="comments per side per round")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra MODERATOR_* setting for the worker (repeatable)",
    )
    args = parser.parse_args(argv)
    guard_training(args)
    extra = dict(item.split("=", 1) for item in args.worker_env)
    data = load_data()
    rates: dict[str, list[float]] = {"per-record": [], "batched": [], "worker": []}
    batch_rows: list[float] = []
    with Services() as services:
        for r in range(args.rounds):
            values = comment_values(cycle(data.comments, args.messages), f"r{r}")
            for mode in ("per-record", "batched"):
                rates[mode].append(run_raw(services, mode, values, args.partitions, f"{mode}{r}"))
            wr, stats = run_worker(services, values, args.partitions, str(r), extra)
            rates["worker"].append(wr)
            batch_rows.append(stats["rows"] / max(stats["batches"], 1))
            print(
                f"round {r + 1}/{args.rounds}: per-record loop {rates['per-record'][-1]:,.0f} msg/s, "
                f"batched loop {rates['batched'][-1]:,.0f} msg/s, "
                f"faust worker {rates['worker'][-1]:,.0f} msg/s (mean batch {batch_rows[-1]:.1f})",
                file=sys.stderr,
            )
    per, bat, worker = (Stat.of(rates[k]) for k in ("per-record", "batched", "worker"))
    vs_per = Stat.of(w / r for w, r in zip(rates["worker"], rates["per-record"], strict=True))
    vs_bat = Stat.of(w / r for w, r in zip(rates["worker"], rates["batched"], strict=True))
    body = table(
        ["side", "msg/s, median (min–max)", "worker ÷ this"],
        [
            ["aiokafka loop, per record (`async for` + `send_and_wait`)", per.fmt(), vs_per.fmt(2, "×")],
            [
                "aiokafka loop, batched (`getmany(500)` + one ack wait + commit)",
                bat.fmt(),
                vs_bat.fmt(2, "×"),
            ],
            ["**moderator worker** (faust, real pipeline + Redis, no-op models)", worker.fmt(), "1.00×"],
        ],
    )
    body += (
        f"\n\n{args.messages:,} UnSmile dev comments per side per round, {args.partitions} partitions, "
        f"{args.rounds} rounds, sides alternating; worker mean batch {Stat.of(batch_rows).median:.1f} records. "
        f"Goal ≥{GOAL}× the raw loop: {vs_per.median:.2f}× the per-record loop "
        f"(**{'met' if vs_per.median >= GOAL else 'not met'}**), {vs_bat.median:.2f}× the batched loop "
        f"(**{'met' if vs_bat.median >= GOAL else 'not met'}**)."
    )
    if extra:
        body += f" Worker settings: {', '.join(f'`{k}={v}`' for k, v in extra.items())}."
    fig, ax = new_figure(7, 4)
    bar_with_range(
        ax,
        ["aiokafka loop\nper record", "aiokafka loop\nbatched", "moderator worker\n(no-op models)"],
        [per, bat, worker],
        ylabel="msg/s",
        colors=["#999999", "#666666", "#1f77b4"],
    )
    ax.set_title("Pipeline overhead: records/s, median and min–max")
    img = save_figure(fig, "bench_overhead.png", img_dir_for(args.doc))
    section = Section(
        "overhead",
        "2. Pipeline overhead: faust worker (no-op models) vs plain aiokafka loops",
        body,
        command_line("bench.overhead", argv if argv is not None else sys.argv[1:]),
        [img],
    )
    result: dict[str, Any] = {**rates, "batch_rows": batch_rows}
    finish(args, section, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
