"""Benchmark 5: produce-to-verdict latency of replies at fixed rates, with the shipped models.

A real ``moderator worker`` process (shipped classifier and judge on ONNX Runtime, CPU) reads
``llm-replies``; this process produces KoSBi dev (context, sentence) pairs at a fixed rate on a
schedule (not "as fast as acks allow") and reads ``verdicts`` with a short fetch wait. Latency is the
time from just before ``send`` to the verdict's arrival at the reader, on one clock: what a client
of the stream would see. The verdict cache is off so every reply runs both models.

The batch window (``MODERATOR_BATCH_WINDOW_MS``) is swept at 20 replies/s; every rate runs at the
default window.

    python -m bench.latency --rates 10 20 50 --windows 5 20 50 --seconds 20 --rounds 3
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    RESULTS_DIR,
    Section,
    Services,
    Stat,
    add_model_args,
    base_parser,
    bench_process,
    create_topics,
    cycle,
    finish,
    fresh_topics,
    guard_training,
    img_dir_for,
    invocation,
    load_data,
    model_dir,
    model_label,
    new_figure,
    percentile,
    save_figure,
    table,
    worker_env,
)
from moderator.local.embedded import free_port
from moderator.settings import bootstrap_servers

GOAL_RATE = 20
GOAL_P99_MS = 150.0


async def drive(
    broker_url: str, names: Any, pairs: list[tuple[str, str]], rate: float, seconds: float, tag: str
) -> list[float]:
    """Produce ``rate``/s for ``seconds``; return each reply's produce-to-verdict latency in ms."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    servers = bootstrap_servers(broker_url)
    n = max(1, int(rate * seconds))
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    consumer = AIOKafkaConsumer(
        names.verdicts,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    values = [
        (f"{tag}-{i}", orjson.dumps({"id": f"{tag}-{i}", "prompt": p, "reply": r}))
        for i, (p, r) in enumerate(cycle(pairs, n))
    ]

    async def read() -> None:
        while len(got) < n:
            batch = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    rid = orjson.loads(record.value or b"{}").get("id")
                    if rid in sent and rid not in got:
                        got[rid] = now

    reader = asyncio.ensure_future(read())
    try:
        start = time.perf_counter() + 0.2
        for i, (rid, value) in enumerate(values):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[rid] = time.perf_counter()
            await producer.send(names.replies, value, key=rid.encode())
        await asyncio.wait_for(reader, timeout=max(60.0, seconds * 3))
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    return [(got[rid] - sent[rid]) * 1000.0 for rid in sent if rid in got]


def run_config(
    services: Services,
    classifier: Path,
    judge: Path,
    pairs: list[tuple[str, str]],
    window_ms: float,
    plan: list[float],
    seconds: float,
    threads: int,
) -> dict[float, list[float]]:
    """One worker at ``window_ms``; drive each rate in ``plan`` in turn; latencies (ms) by rate."""
    names = fresh_topics(f"lat{int(window_ms)}")
    asyncio.run(create_topics(services.broker_url, names, 4))
    port = free_port()
    env = worker_env(
        services,
        app_id=f"bench-latency-{int(window_ms)}-{time.monotonic_ns()}",
        topics=names,
        web_port=port,
        classifier=classifier,
        judge=judge,
        extra={
            "MODERATOR_REDIS_URL": "",
            "MODERATOR_BATCH_WINDOW_MS": str(window_ms),
            "MODERATOR_INTRA_OP_THREADS": str(threads),
        },
    )
    proc = bench_process(
        [sys.executable, "-m", "moderator", "worker"], env, RESULTS_DIR / "latency-worker.log", port
    )
    proc.start()
    out: dict[float, list[float]] = {}
    try:
        proc.wait_ready()
        # warm-up: a few replies so first-call allocations are not in the figures
        asyncio.run(drive(services.broker_url, names, pairs[-20:], 20, 1.0, f"warm{int(window_ms)}"))
        for k, rate in enumerate(plan):
            lat = asyncio.run(
                drive(services.broker_url, names, pairs, rate, seconds, f"w{int(window_ms)}-{k}")
            )
            proc.check_alive()
            out[rate] = lat
            yield_line = (
                f"window {window_ms:g} ms, {rate:g}/s: n={len(lat)} p50 {percentile(lat, 50):.0f} ms "
                f"p95 {percentile(lat, 95):.0f} ms p99 {percentile(lat, 99):.0f} ms"
            )
            print(yield_line, file=sys.stderr)
    finally:
        proc.stop()
    return out


def _percentile_plot(
    xs: list[float],
    stat: Callable[[float, int], Stat],
    xlabel: str,
    title: str,
    filename: str,
    img_dir: Path,
) -> Path:
    """p50/p95/p99 (median with min–max bars over rounds) against ``xs``, with the p99 goal line."""
    fig, ax = new_figure(7, 4)
    for q, style in ((50, "o-"), (95, "s--"), (99, "^-")):
        stats = [stat(x, q) for x in xs]
        ax.errorbar(
            xs,
            [s.median for s in stats],
            yerr=[[s.median - s.lo for s in stats], [s.hi - s.median for s in stats]],
            fmt=style,
            capsize=4,
            label=f"p{q}",
        )
    ax.axhline(GOAL_P99_MS, color="red", linestyle=":", label=f"goal p99 {GOAL_P99_MS:.0f} ms")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("produce → verdict, ms")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, filename, img_dir)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=3)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 20.0, 50.0], help="replies/s")
    parser.add_argument(
        "--windows", type=float, nargs="+", default=[5.0, 20.0, 50.0], help="batch windows (ms)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per rate per round")
    add_model_args(parser)
    args = parser.parse_args(argv)
    guard_training(args)
    from moderator.settings import Settings

    default_window = Settings().batch_window_ms
    windows = sorted(set(args.windows) | {default_window})
    classifier, judge = model_dir("classifier", args.classifier), model_dir("judge", args.judge)
    pairs = load_data().pairs
    # results[window][rate] = list over rounds of latency lists
    results: dict[float, dict[float, list[list[float]]]] = {w: {} for w in windows}
    with Services() as services:
        for r in range(args.rounds):
            for w in windows:
                plan: list[float] = (
                    sorted({float(r) for r in args.rates} | {float(GOAL_RATE)})
                    if w == default_window
                    else [float(GOAL_RATE)]
                )
                got = run_config(services, classifier, judge, pairs, w, plan, args.seconds, args.threads)
                for rate, lat in got.items():
                    results[w].setdefault(rate, []).append(lat)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def pct(rounds: list[list[float]], q: float) -> Stat:
        return Stat.of(percentile(lat, q) for lat in rounds)

    rate_rows = []
    for rate in args.rates:
        rounds = results[default_window][rate]
        rate_rows.append(
            [
                f"{rate:g}",
                sum(len(x) for x in rounds),
                pct(rounds, 50).fmt(),
                pct(rounds, 95).fmt(),
                pct(rounds, 99).fmt(),
            ]
        )
    window_rows = []
    for w in windows:
        rounds = results[w][GOAL_RATE]
        window_rows.append(
            [
                f"{w:g}" + (" (default)" if w == default_window else ""),
                pct(rounds, 50).fmt(),
                pct(rounds, 95).fmt(),
                pct(rounds, 99).fmt(),
            ]
        )
    goal_p99 = pct(results[default_window][GOAL_RATE], 99).median
    best_w = min(windows, key=lambda w: pct(results[w][GOAL_RATE], 99).median)
    body = "Replies/s at the default batch window "
    body += f"({default_window:g} ms), produce-to-verdict latency in ms, median over rounds (min–max):\n\n"
    body += table(["replies/s", "replies", "p50 ms", "p95 ms", "p99 ms"], rate_rows)
    body += f"\n\nBatch window sweep at {GOAL_RATE} replies/s:\n\n"
    body += table(["batch window ms", "p50 ms", "p95 ms", "p99 ms"], window_rows)
    body += (
        f"\n\nClassifier `{model_label(classifier)}`, judge `{model_label(judge)}`, one worker, ONNX Runtime "
        f"intra-op threads {args.threads or 'auto (one single-thread lane per core, a solo session for lone calls)'}, Redis cache off (every reply runs both models), "
        f"{args.seconds:g} s per rate per round, {args.rounds} rounds. Goal p99 ≤{GOAL_P99_MS:.0f} ms at "
        f"{GOAL_RATE}/s: p99 {goal_p99:.0f} ms, **{'met' if goal_p99 <= GOAL_P99_MS else 'not met'}**; "
        f"lowest p99 at {GOAL_RATE}/s with a {best_w:g} ms window."
    )
    meeting = [w for w in windows if pct(results[w][GOAL_RATE], 99).median <= GOAL_P99_MS]
    body += (
        f" Windows meeting the goal at {GOAL_RATE}/s here: "
        + (", ".join(f"{w:g} ms" for w in meeting) if meeting else "none")
        + ". A record that finds the worker idle waits up to one window for batch-mates, then the batch "
        "runs both models: p99 ≈ window + model time of a batch + broker round trips. Under load a batch "
        "fills to `MODERATOR_BATCH_SIZE` before the window ends, so the window only matters when traffic is "
        "light; a shorter one costs more, smaller model calls."
    )
    img_dir = img_dir_for(args.doc, args.no_doc)
    img1 = _percentile_plot(
        list(args.rates),
        lambda rate, q: pct(results[default_window][rate], q),
        "replies/s",
        f"Reply latency at the default {default_window:g} ms batch window",
        "bench_latency_rates.png",
        img_dir,
    )
    img2 = _percentile_plot(
        list(windows),
        lambda window, q: pct(results[window][GOAL_RATE], q),
        "batch window, ms",
        f"Reply latency at {GOAL_RATE} replies/s vs batch window",
        "bench_latency_window.png",
        img_dir,
    )
    section = Section(
        "latency",
        "5. Latency: replies at fixed rates, produce → verdict",
        body,
        invocation("bench.latency", argv),
        [img1, img2],
    )
    raw = {str(w): {str(rate): lats for rate, lats in by_rate.items()} for w, by_rate in results.items()}
    finish(args, section, {"latency_ms": raw, "default_window_ms": default_window})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
