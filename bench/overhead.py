"""Benchmark 2: what the faust worker costs per message, against a plain aiokafka loop.

Both sides read the same pre-filled ``comments`` topic (UnSmile dev comments, 4 partitions) on the same
local broker, in their own process, and write one verdict-shaped record per input:

* **raw loop**: ``bench.raw_loop``, aiokafka consume → produce → commit, nothing else;
* **faust worker**: ``bench.noop_worker``, the real worker (``moderator.stream.worker.run_worker``: validation,
  normalisation, Redis dedupe/cache round trips, policy, verdict serialisation, at-least-once sinks)
  with the models replaced by ``moderator.local.noop_models``'s constant ones.

Throughput is counted from the output records' broker timestamps (first → last verdict), so process
start-up and the consumer-group join are not in it. Rounds alternate the two sides.

    python -m bench.overhead --messages 20000 --rounds 3
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.common import (
    REPO,
    RESULTS_DIR,
    Section,
    Services,
    Stat,
    bar_with_range,
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
    new_figure,
    produce_all,
    read_topic,
    save_plot,
    table,
    wait_until,
    worker_env,
)
from moderator.local.embedded import free_port

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


def _stop_spy(spy: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """py-spy writes its samples on SIGINT; one that does not exit (still attaching to a worker that was
    done in a second, as in a smoke run) is killed, and its profile is then simply missing."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(timeout=10)


def run_worker(
    services: Services,
    values: list[bytes],
    partitions: int,
    tag: str,
    extra_env: dict[str, str],
    profile: Path | None = None,
) -> tuple[float, dict[str, float]]:
    """Time the no-op worker on ``values``; with ``profile``, py-spy samples it into that file."""
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
    proc = bench_process(
        [sys.executable, "-m", "bench.noop_worker"], env, RESULTS_DIR / f"overhead-worker-{tag}.log", port
    )
    proc.start()
    spy: subprocess.Popen[bytes] | None = None
    try:
        proc.wait_ready()
        assert proc.proc is not None
        worker = psutil.Process(proc.proc.pid)
        cpu0, wall0 = sum(worker.cpu_times()[:2]), time.perf_counter()
        if profile is not None:
            spy = subprocess.Popen(
                [
                    shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
                    "record",
                    "--pid",
                    str(proc.proc.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                ]
                + ["--nonblocking", "--output", str(profile)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def done() -> bool:
            proc.check_alive()
            return proc.metric("moderator_messages_out_total", f'topic="{names.verdicts}"') >= len(values)

        if not wait_until(done, 600, 0.5):
            raise RuntimeError(f"worker did not finish:\n{proc.log_tail()}")
        stats = {
            "batches": proc.metric("moderator_batch_size_count"),
            "rows": proc.metric("moderator_batch_size_sum"),
            "cpu_cores": (sum(worker.cpu_times()[:2]) - cpu0) / (time.perf_counter() - wall0),
        }
    finally:
        try:
            if spy is not None:
                _stop_spy(spy)
        finally:  # the worker goes whatever py-spy does: an orphan would load the machine for good
            proc.stop()
    records = asyncio.run(read_topic(services.broker_url, names.verdicts, len(values), 60))
    return rate(records), stats


#: Where a profile sample's CPU goes: the first of these layers (in this order) with a frame on the
#: sample's stack, so a socket write under redis-py counts as Redis and one under aiokafka's producer
#: as a verdict send, while the agent loop around everything does not claim it all.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    (
        "Redis client (redis-py, moderator/core/{redis_store,cache,registry}.py)",
        ("redis/", "moderator/core/redis_store.py", "moderator/core/cache.py", "moderator/core/registry.py"),
    ),
    (
        "verdict sends (moderator/stream/sinks.py, faust + aiokafka producer)",
        ("moderator/stream/sinks.py", "aiokafka/producer/", "Producer.send"),
    ),
    (
        "moderator pipeline (decode, validate, normalise, policy, verdicts)",
        (
            "moderator/core/pipeline.py",
            "moderator/core/policy.py",
            "moderator/core/verdict_core.py",
            "topics/",
            "BatchHandler._messages",
        ),
    ),
    ("faust streams, agents, acks + aiokafka consumer (fetches)", ("faust/", "mode/", "aiokafka/")),
)
#: Files whose frames sit at the root of every stack of a thread (entry points, thread and loop runners).
_ROOTS = (
    "mode/worker.py",
    "mode/threads.py",
    "threading.py",
    "<frozen runpy>",
    "bench/",
    "asyncio/",
    "selectors.py",
)
_FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame(raw: str) -> tuple[str, str]:
    m = _FRAME.match(raw)
    if not m:
        return raw, ""
    path = m.group("file")
    for cut in ("site-packages/", str(REPO) + "/"):
        path = path.split(cut)[-1]
    return m.group("fn"), path


def summarise_profile(
    path: Path, top: int = 12
) -> tuple[list[tuple[str, float]], list[tuple[str, float]], int]:
    """py-spy raw stacks → (share of samples per layer, top self-time frames, samples)."""
    layers: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        fn, file = frames[-1]
        leaves[f"{fn} ({file})"] += n
        # Only what runs inside a callback/task step counts for a layer; the frames above the event
        # loop's Handle._run (the worker's main(), run_forever) are on every stack of their thread.
        steps = [i for i, (fn, _) in enumerate(frames) if fn == "Handle._run"]
        inner = frames[steps[-1] + 1 :] if steps else [f for f in frames if not f[1].startswith(_ROOTS)]
        layer = next(
            (name for name, keys in LAYERS if any(k in file or k == fn for fn, file in inner for k in keys)),
            "event loop: select, scheduling, other stdlib",
        )
        layers[layer] += n
    if not total:
        return [], [], 0
    return (
        [(k, v / total) for k, v in layers.most_common()],
        [(k, v / total) for k, v in leaves.most_common(top)],
        total,
    )


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
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the extra, untimed worker run under py-spy"
    )
    args = parser.parse_args(argv)
    guard_training(args)
    extra = dict(item.split("=", 1) for item in args.worker_env)
    data = load_data()
    rates: dict[str, list[float]] = {"per-record": [], "batched": [], "worker": []}
    batch_rows: list[float] = []
    cpu_cores: list[float] = []
    profile_path = RESULTS_DIR / "overhead-worker.pyspy.txt"
    # py-spy from the dev extra sits beside this interpreter, which need not be on PATH
    spy_path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    spy = shutil.which("py-spy", path=spy_path) if not args.no_profile else None
    with Services() as services:
        for r in range(args.rounds):
            values = comment_values(cycle(data.comments, args.messages), f"r{r}")
            for mode in ("per-record", "batched"):
                rates[mode].append(run_raw(services, mode, values, args.partitions, f"{mode}{r}"))
            wr, stats = run_worker(services, values, args.partitions, str(r), extra)
            rates["worker"].append(wr)
            batch_rows.append(stats["rows"] / max(stats["batches"], 1))
            cpu_cores.append(stats["cpu_cores"])
            print(
                f"round {r + 1}/{args.rounds}: per-record loop {rates['per-record'][-1]:,.0f} msg/s, "
                f"batched loop {rates['batched'][-1]:,.0f} msg/s, "
                f"faust worker {rates['worker'][-1]:,.0f} msg/s (mean batch {batch_rows[-1]:.1f})",
                file=sys.stderr,
            )
        if spy:
            values = comment_values(cycle(data.comments, args.messages), "profile")
            run_worker(services, values, args.partitions, "profile", extra, profile=profile_path)
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
    body += (
        f" While it ran, the worker process kept {Stat.of(cpu_cores).median:.2f} cores busy (CPU time ÷ wall "
        "time; its model thread is idle here), the broker and Redis shared the rest."
    )
    layers, leaves, samples = (
        summarise_profile(profile_path) if spy and profile_path.exists() else ([], [], 0)
    )
    if samples:
        body += (
            f"\n\n**Where the worker's CPU goes** (py-spy, {samples:,} samples at 250 Hz over one more, "
            f"untimed run of {args.messages:,} comments; each sample counted once, for the deepest frame in "
            "one of these layers):\n\n"
        )
        body += table(["layer", "share of samples"], [[k, f"{v:.0%}"] for k, v in layers])
        body += "\n\nTop functions by own time:\n\n"
        body += table(["function (file)", "own time"], [[f"`{k}`", f"{v:.1%}"] for k, v in leaves])
    elif not args.no_profile:
        body += "\n\n(py-spy is not installed, so no profile: `pip install py-spy`.)"
    fig, ax = new_figure(7, 4)
    bar_with_range(
        ax,
        ["aiokafka loop\nper record", "aiokafka loop\nbatched", "moderator worker\n(no-op models)"],
        [per, bat, worker],
        ylabel="msg/s",
        colors=["#999999", "#666666", "#1f77b4"],
    )
    ax.set_title("Pipeline overhead: records/s, median and min–max")
    img = save_plot(fig, "bench_overhead.png", args)
    section = Section(
        "overhead",
        "2. Pipeline overhead: faust worker (no-op models) vs plain aiokafka loops",
        body,
        invocation("bench.overhead", argv),
        [img],
    )
    result: dict[str, Any] = {
        **rates,
        "batch_rows": batch_rows,
        "worker_cpu_cores": cpu_cores,
        "profile_layers": layers,
        "profile_top": leaves,
    }
    finish(args, section, result)
    # last line: the headline figures as JSON, for scripts and CI logs
    print(
        orjson.dumps(
            {
                "worker_msgs_per_s": worker.median,
                "batched_loop_msgs_per_s": bat.median,
                "per_record_loop_msgs_per_s": per.median,
                "worker_vs_batched_loop": vs_bat.median,
                "worker_mean_batch": Stat.of(batch_rows).median,
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
