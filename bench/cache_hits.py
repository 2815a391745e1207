"""Benchmark 3: pipeline throughput when every text is a repeat (Redis hits) vs when none is.

Runs the real ``Pipeline`` (validation, dedupe claims, Redis MGET/SET, the shipped classifier and judge
on ONNX Runtime, policy) in this process against a local ``redis-server``, in batches of the worker's
``batch_size``. Each round: flush Redis and push the texts through (every one a miss, so every one is
scored), then push the same texts again under new record ids (every one a hit). Comments are UnSmile dev
comments; replies are KoSBi dev (context, sentence) pairs, which also run the judge.

    python -m bench.cache_hits --comments 600 --replies 200 --rounds 3
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Section,
    Stat,
    add_model_args,
    base_parser,
    comment_values,
    finish,
    guard_training,
    invocation,
    load_data,
    model_dir,
    model_label,
    new_figure,
    reply_values,
    save_plot,
    table,
)

GOAL = 10.0


async def push(pipeline: Any, kind: str, values: list[bytes], batch: int) -> tuple[float, int, int]:
    """Seconds to push ``values`` through the pipeline; also (verdicts, cached verdicts)."""
    from moderator.core.pipeline import InputMessage

    n_verdicts = n_cached = 0
    started = time.perf_counter()
    for i in range(0, len(values), batch):
        messages = [InputMessage(kind, v) for v in values[i : i + batch]]  # type: ignore[arg-type]
        result = await pipeline.process(messages)
        n_verdicts += len(result.verdicts)
        n_cached += sum(v.cached for v in result.verdicts)
    return time.perf_counter() - started, n_verdicts, n_cached


async def measure(
    classifier: Path, judge: Path, redis_url: str, inputs: dict[str, list[bytes]], rounds: int, threads: int
) -> dict[str, dict[str, list[float]]]:
    import redis.asyncio as aioredis

    from moderator.metrics import Metrics
    from moderator.settings import Settings
    from moderator.stream.worker import build_pipeline

    settings = Settings(
        intra_op_threads=threads,
        device="cpu",
        redis_url=redis_url,
        cache_ttl_s=3600,
        cache_timeout_ms=1000,
        classifier_path=classifier,
        judge_path=judge,
    )
    pipeline = build_pipeline(settings, Metrics())
    admin = aioredis.from_url(redis_url)
    out: dict[str, dict[str, list[float]]] = {k: {"miss": [], "hit": []} for k in inputs}
    try:
        # warm-up: first ONNX Runtime calls allocate; not timed
        for kind, values in inputs.items():
            await push(pipeline, kind, values[: settings.batch_size], settings.batch_size)
        for r in range(rounds):
            for kind, values in inputs.items():
                await admin.flushdb()
                relabel = [v.replace(b'"id":"', f'"id":"m{r}-'.encode(), 1) for v in values]
                secs, n, cached = await push(pipeline, kind, relabel, settings.batch_size)
                if n != len(values) or cached:
                    raise RuntimeError(f"miss pass: {n} verdicts, {cached} cached of {len(values)}")
                out[kind]["miss"].append(n / secs)
                relabel = [v.replace(b'"id":"', f'"id":"h{r}-'.encode(), 1) for v in values]
                secs, n, cached = await push(pipeline, kind, relabel, settings.batch_size)
                if n != len(values) or cached != n:
                    raise RuntimeError(f"hit pass: {n} verdicts, {cached} cached of {len(values)}")
                out[kind]["hit"].append(n / secs)
                print(
                    f"round {r + 1}/{rounds} {kind}s: none repeated {out[kind]['miss'][-1]:,.0f}/s, "
                    f"all repeated {out[kind]['hit'][-1]:,.0f}/s",
                    file=sys.stderr,
                )
    finally:
        await admin.aclose()
        await pipeline.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=3)
    parser.add_argument("--comments", type=int, default=600, help="UnSmile dev comments per pass")
    parser.add_argument("--replies", type=int, default=200, help="KoSBi dev pairs per pass")
    add_model_args(parser)
    args = parser.parse_args(argv)
    guard_training(args)
    classifier, judge = model_dir("classifier", args.classifier), model_dir("judge", args.judge)
    data = load_data()
    inputs = {
        "comment": comment_values(data.comments[: args.comments], "c"),
        "reply": reply_values(data.pairs[: args.replies], "r"),
    }
    from moderator.local.embedded import EmbeddedRedis

    with EmbeddedRedis() as redis_server:
        rates = asyncio.run(measure(classifier, judge, redis_server.url, inputs, args.rounds, args.threads))
    rows = []
    summary: dict[str, Any] = {}
    for kind, label in (("comment", "comments (classifier)"), ("reply", "replies (classifier + judge)")):
        miss, hit = Stat.of(rates[kind]["miss"]), Stat.of(rates[kind]["hit"])
        ratio = Stat.of(h / m for h, m in zip(rates[kind]["hit"], rates[kind]["miss"], strict=True))
        summary[kind] = ratio.median
        rows.append([label, len(inputs[kind]), miss.fmt(), hit.fmt(), f"**{ratio.fmt(1, '×')}**"])
    body = table(
        ["records", "per pass", "none repeated, rec/s", "all repeated, rec/s", "ratio"],
        rows,
    )
    met = all(v >= GOAL for v in summary.values())
    body += (
        f"\n\nClassifier `{model_label(classifier)}`, judge `{model_label(judge)}`; real Redis; "
        f"batches of 64; {args.rounds} rounds, median (min–max). Goal ≥{GOAL:.0f}×: "
        f"**{'met' if met else 'not met'}**. A hit still costs validation, the id claim, one MGET per "
        "batch and the verdict; a miss adds tokenisation and both models."
    )
    fig, ax = new_figure(7, 4)
    kinds = ["comment", "reply"]
    xs = range(len(kinds))
    for offset, which, color in ((-0.2, "miss", "#999999"), (0.2, "hit", "#1f77b4")):
        stats = [Stat.of(rates[k][which]) for k in kinds]
        ax.bar(
            [x + offset for x in xs],
            [s.median for s in stats],
            width=0.4,
            yerr=[[s.median - s.lo for s in stats], [s.hi - s.median for s in stats]],
            capsize=5,
            color=color,
            label="none repeated" if which == "miss" else "all repeated (cache hits)",
        )
    ax.set_xticks(list(xs), ["comments", "replies"])
    ax.set_yscale("log")
    ax.set_ylabel("records/s (log)")
    ax.legend()
    ax.set_title("Verdict cache: throughput, median and min–max")
    img = save_plot(fig, "bench_cache.png", args)
    section = Section(
        "cache",
        "3. Verdict cache: every text a repeat vs none",
        body,
        invocation("bench.cache_hits", argv),
        [img],
    )
    finish(args, section, {"rates": rates, "ratio_median": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
