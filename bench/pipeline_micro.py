"""The pipeline alone, in one process on one core: decode → validate → normalise → cache key → verdict.

No broker, no Redis, no-op models: what is timed is the per-record Python the worker runs around the
models (``Pipeline.process`` with an in-process id registry, then ``VerdictSink.records`` serialising
every verdict as it goes on the wire). Goal: ≥100k records/s on one core, so the stream path has
headroom for a GPU that scores several hundred thousand texts a second. Baseline in the same run:
``orjson.loads`` + ``orjson.dumps`` of every record and nothing else, the floor any Python pipeline
pays per record.

    python -m bench.pipeline_micro --records 50000 --batch 256 --rounds 3

Wall-clock figures on a shared virtual machine swing by ±30% from run to run. ``--instructions``
counts instead: it runs the same loop under valgrind's callgrind twice (no round, then ``--rounds``
rounds) and prints the CPU instructions per record of the difference, the same on every run of the
same code; what compares two commits on a noisy machine (valgrind from Debian's packages).

    python -m bench.pipeline_micro --records 20000 --rounds 2 --instructions
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import orjson

from bench.common import (
    Section,
    Stat,
    base_parser,
    comment_values,
    cycle,
    finish,
    guard_training,
    invocation,
    load_data,
    reply_values,
    table,
)
from moderator.core.pipeline import InputMessage, Pipeline
from moderator.core.policy import load_policy
from moderator.heap import settle_heap
from moderator.local.noop_models import NoopClassifier, NoopJudge
from moderator.metrics import Metrics
from moderator.settings import Settings
from moderator.stream.sinks import VerdictSink
from topics import SourcePosition

GOAL = 100_000.0


def _pin_one_core() -> str:
    """Pin this process to one CPU so the figure is per core (the model thread is idle anyway)."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


async def _pipeline_pass(
    pipeline: Pipeline, sink: VerdictSink, batches: list[list[tuple[str, bytes]]], round_no: int
) -> tuple[float, float, int]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = 0
    offset = 0
    for batch in batches:
        # built per batch, as the worker builds them from each fetched batch: a whole round built up
        # front would sit in the garbage collector's generations as no worker's heap does
        messages = [
            InputMessage(kind, value, SourcePosition(f"in-{kind}", round_no, offset + i))  # type: ignore[arg-type]
            for i, (kind, value) in enumerate(batch)
        ]
        offset += len(batch)
        result = await pipeline.process(messages)
        out += len(sink.records(result))
    return time.perf_counter() - wall0, time.process_time() - cpu0, out


def _floor_pass(values: list[bytes]) -> tuple[float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for value in values:
        orjson.dumps(orjson.loads(value))
    return time.perf_counter() - wall0, time.process_time() - cpu0


#: callgrind's summary line: ``==PID== Collected : N``
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def collected_instructions(valgrind_stderr: str) -> int:
    """The instruction count from callgrind's summary; ValueError if it is not there."""
    found = _COLLECTED.findall(valgrind_stderr)
    if not found:
        raise ValueError("callgrind printed no 'Collected :' line")
    return int(found[-1])


def _count_instructions(records: int, batch: int, rounds: int) -> int:
    """Instructions per record: a callgrind run of ``rounds`` rounds minus one of no round."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("--instructions needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 69
    counts = []
    for n in (0, rounds):
        cmd = [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "bench.pipeline_micro",
            "--loop-only",
            str(n),
            "--records",
            str(records),
            "--batch",
            str(batch),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"callgrind run failed ({done.returncode}): {done.stderr[-2000:]}", file=sys.stderr)
            return 1
        counts.append(collected_instructions(done.stderr))
    per_record = (counts[1] - counts[0]) / (rounds * records)
    print(
        f"{per_record:,.0f} instructions per record ({rounds} rounds of {records:,} records under "
        f"callgrind, minus a run of none)",
        file=sys.stderr,
    )
    print(orjson.dumps({"pipeline_instructions_per_record": round(per_record)}).decode())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=3)
    parser.add_argument("--records", type=int, default=50_000, help="records per round (3/4 comments)")
    parser.add_argument("--batch", type=int, default=256, help="records per pipeline batch")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count CPU instructions per record under valgrind instead of timing (deterministic)",
    )
    parser.add_argument("--loop-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.records < 1 or args.batch < 1:
        parser.error("--rounds, --records and --batch must be at least 1")
    if args.instructions:
        return _count_instructions(args.records, args.batch, args.rounds)
    if args.loop_only is None:
        guard_training(args)
    pinned = _pin_one_core()
    data = load_data()
    settings = Settings.from_env()
    n_comments = args.records * 3 // 4
    values: list[tuple[str, bytes]] = [
        ("comment", v) for v in comment_values(cycle(data.comments, n_comments), "c")
    ]
    values += [("reply", v) for v in reply_values(cycle(data.pairs, args.records - n_comments), "r")]
    pipeline = Pipeline(
        NoopClassifier(),
        NoopJudge(),
        load_policy(settings.policy_path),
        limits=settings.limits,
        metrics=Metrics(),
    )
    sink = VerdictSink(settings.topics, _no_send, pipeline.metrics)

    # comments first, then replies: a batch holds one kind, as a worker's fetch from one topic does;
    # each round uses its own partition number, so the id registry sees first-time ids every round
    ordered = sorted(values, key=lambda kv: kv[0])
    batches = [ordered[i : i + args.batch] for i in range(0, len(ordered), args.batch)]
    settle_heap()

    rates: list[float] = []
    cpu_rates: list[float] = []
    floor: list[float] = []
    asyncio.run(_pipeline_pass(pipeline, sink, batches[:4], -1))  # warm-up: imports, caches
    if args.loop_only is not None:  # a callgrind run of --instructions: the rounds, nothing else
        for r in range(args.loop_only):
            asyncio.run(_pipeline_pass(pipeline, sink, batches, r))
        asyncio.run(pipeline.close())
        return 0
    for r in range(args.rounds):
        wall, cpu, out = asyncio.run(_pipeline_pass(pipeline, sink, batches, r))
        if out < len(values):
            raise RuntimeError(f"pipeline emitted {out} records for {len(values)} inputs")
        rates.append(len(values) / wall)
        cpu_rates.append(len(values) / cpu)
        fw, _ = _floor_pass([v for _, v in values])
        floor.append(len(values) / fw)
        print(
            f"round {r + 1}/{args.rounds}: pipeline {rates[-1]:,.0f} rec/s (CPU {cpu_rates[-1]:,.0f}), "
            f"orjson floor {floor[-1]:,.0f} rec/s",
            file=sys.stderr,
        )
    asyncio.run(pipeline.close())
    rate, cpu_rate, base = Stat.of(rates), Stat.of(cpu_rates), Stat.of(floor)
    ratio = Stat.of(p / f for p, f in zip(rates, floor, strict=True))
    body = table(
        ["side", "records/s, median (min–max)", "pipeline ÷ this"],
        [
            ["`orjson.loads` + `orjson.dumps` per record (floor)", base.fmt(), ratio.fmt(3, "×")],
            [
                "**pipeline**: decode, validate, normalise, cache key, ids, policy, verdict encode",
                rate.fmt(),
                "1.00×",
            ],
        ],
    )
    body += (
        f"\n\n{len(values):,} records per round ({n_comments:,} UnSmile dev comments, "
        f"{len(values) - n_comments:,} KoSBi dev pairs as replies), batches of {args.batch}, no-op models, "
        f"in-process id registry, no Redis; {pinned}; {args.rounds} rounds. Per CPU second: "
        f"{cpu_rate.fmt()} records. Goal ≥{GOAL:,.0f} records/s on one core: "
        f"**{'met' if rate.median >= GOAL else 'not met'}**."
    )
    section = Section(
        "pipeline_micro",
        "Pipeline alone: records/s on one core",
        body,
        invocation("bench.pipeline_micro", argv),
        [],
    )
    result: dict[str, Any] = {"pipeline": rates, "pipeline_cpu": cpu_rates, "orjson_floor": floor}
    finish(args, section, result)
    print(
        orjson.dumps(
            {
                "pipeline_records_per_s": rate.median,
                "pipeline_records_per_cpu_s": cpu_rate.median,
                "orjson_floor_records_per_s": base.median,
            }
        ).decode()
    )
    return 0


async def _no_send(topic: str, key: bytes | None, value: bytes) -> Any:  # pragma: no cover - never sent
    raise AssertionError("the micro-benchmark never sends")


if __name__ == "__main__":
    raise SystemExit(main())
