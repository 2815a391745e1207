"""Benchmark: ``moderator serve`` under a real load generator (``wrk``), against offline ``score``.

Three measurements on one ``moderator serve`` process (shipped models, a local Redis):

1. **Latency at fixed rates**: one KoSBi dev (context, reply) pair per ``POST /v1/replies`` (both
   models run), at 20 and 50 requests/s, Redis flushed first so every request is a miss. ``wrk`` is
   closed-loop, so each connection pauses between requests (its Lua ``delay``); the pause is
   calibrated in a short first run so the achieved rate meets the target, and the achieved rate is
   reported as measured. Each pause is drawn uniformly from 0.5-1.5× the mean, so the connections
   drift apart: with a fixed pause they stayed in lock-step and every request arrived in a burst of
   four, which measured the time of a four-reply batch rather than one reply's latency.
2. **Saturation**: one UnSmile dev comment per ``POST /v1/moderations`` (the OpenAI endpoint), 32
   connections, no pauses, every text distinct and a miss. Each round is followed at once by the
   baseline: the same texts through the same pipeline as ``moderator score`` runs it (``score_lines``,
   batches of 64, no cache), in this process while the server idles. Rounds are paired so that load
   from other work on the machine skews a round, not the comparison; the median ratio is reported.
3. **Repeats**: the texts of run 2 again: every one a Redis hit (counted from ``/metrics``).

    python -m bench.api --duration 15 --rounds 3

The machine's load (``/proc/loadavg``) is recorded before and after: other work on the same cores
skews every figure here, and the section says so.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    Section,
    base_parser,
    bench_process,
    command_line,
    distinct,
    finish,
    guard_training,
    load_data,
    score_path_rate,
    table,
)

RATES = (20, 50)
LATENCY_GOAL_MS = 60.0
SATURATION_GOAL = 0.8
#: Texts/s the saturation pool is sized for: every request of a round must be a new text, or the
#: round measures Redis hits (a fast machine once ran through 2 × the dev comments in 3 s of a 10 s
#: round and reported 4× ``score``). A round that still sees a hit says so and is not judged.
POOL_TEXTS_PER_S = 4000

_LUA = r"""
local bodies, idx, path, pause = {}, 0, "/", 0
function init(args)
  path, pause = args[1], tonumber(args[3])
  for line in io.lines(args[2]) do bodies[#bodies + 1] = line end
  math.randomseed(os.time())
end
function request()
  idx = idx % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[idx])
end
-- uniform on [0.5, 1.5) x pause: the connections drift apart instead of arriving in lock-step bursts
function delay() return math.floor(pause * (0.5 + math.random())) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _wrk(
    url: str, path: str, bodies: Path, script: Path, *, connections: int, seconds: float, pause_ms: float
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(script), url, "--", path, str(bodies), str(int(pause_ms)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def _flush(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


class Baseline:
    """``moderator score``'s path (``score_lines``, no cache) in this process, models loaded once."""

    def __init__(self, threads: int, lanes: int) -> None:
        from moderator.metrics import Metrics
        from moderator.settings import Settings
        from moderator.stream.worker import build_pipeline

        settings = Settings.from_env().with_overrides(
            device="cpu", intra_op_threads=threads, model_lanes=lanes
        )
        self.pipeline = build_pipeline(settings, Metrics(), use_cache=False, shared_ids=False)

    def rate(self, texts: list[str], batch_size: int = 64) -> float:
        """Texts/s over ``texts``, the clock running from the first batch to the last verdict."""
        import orjson

        lines = [orjson.dumps({"id": f"b{i}", "text": t}) for i, t in enumerate(texts)]
        return asyncio.run(score_path_rate(self.pipeline, "comment", lines, batch_size))

    def close(self) -> None:
        asyncio.run(self.pipeline.close())


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "", rounds=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections at saturation")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="ONNX Runtime intra-op threads, server and baseline (0: one per lane, or ORT's default)",
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=0,
        help="model runs at once, server and baseline (MODERATOR_MODEL_LANES; 0: one per core on CPU)",
    )
    args = parser.parse_args(argv)
    guard_training(args)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (Debian's package)")
    from moderator.local.embedded import EmbeddedRedis, free_port

    data = load_data()
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    script = work / "post.lua"
    script.write_text(_LUA)
    replies = work / "replies.jsonl"
    replies.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "prompt": p, "reply": r}, ensure_ascii=False) + "\n"
            for i, (p, r) in enumerate(data.pairs)
        )
    )
    # every saturation text distinct: the dev comments, then copies with a numbered marker appended,
    # enough that no round at up to POOL_TEXTS_PER_S comes round to a text it sent before
    copies = max(2, math.ceil(args.duration * POOL_TEXTS_PER_S / max(len(data.comments), 1)))
    texts = distinct(data.comments, copies * len(data.comments), lambda t, k: f"{t} ({k})")
    comments = work / "comments.jsonl"
    comments.write_text("".join(json.dumps({"input": t}, ensure_ascii=False) + "\n" for t in texts))

    load_before = _loadavg()
    redis_server = EmbeddedRedis()
    redis_server.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATOR_")}
    env.update(
        MODERATOR_REDIS_URL=redis_server.url,
        MODERATOR_DEVICE="cpu",
        MODERATOR_API_RATE_LIMIT="0",
        MODERATOR_INTRA_OP_THREADS=str(args.threads),
        MODERATOR_MODEL_LANES=str(args.lanes),
        MODERATOR_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )
    server = bench_process(
        [sys.executable, "-m", "moderator", "serve", "--port", str(port)],
        env,
        RESULTS_DIR / "api-serve.log",
        port,
    )
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"load_before": load_before}
    baseline = Baseline(args.threads, args.lanes)
    try:
        server.start(wait_ready=True)
        latency: dict[int, dict[str, Any]] = {}
        for rate in RATES:
            connections = max(2, rate // 5)
            pause = connections * 1000.0 / rate
            _flush(redis_server.url)
            probe = _wrk(
                url, "/v1/replies", replies, script, connections=connections, seconds=3, pause_ms=pause
            )
            pause = max(0.0, connections * 1000.0 / rate - probe["mean_us"] / 1000.0)
            _flush(redis_server.url)
            model0 = server.metric("moderator_model_latency_seconds_sum")
            latency[rate] = _wrk(
                url,
                "/v1/replies",
                replies,
                script,
                connections=connections,
                seconds=args.duration,
                pause_ms=pause,
            )
            latency[rate]["connections"] = connections
            latency[rate]["model_ms_per_reply"] = (
                1000
                * (server.metric("moderator_model_latency_seconds_sum") - model0)
                / max(latency[rate]["requests"], 1)
            )
            latency[rate]["pause_ms"] = pause
        result["latency"] = latency

        # Saturation and baseline in pairs, back to back, so a change in the machine's load between
        # them (other work on the same cores) skews one ratio, not the comparison as a whole.
        rounds: list[dict[str, Any]] = []
        for _ in range(max(1, args.rounds)):
            _flush(redis_server.url)
            hits0, batches0, inputs0, model0 = (
                server.metric("moderator_cache_hits_total"),
                server.metric("moderator_api_batch_inputs_count"),
                server.metric("moderator_api_batch_inputs_sum"),
                server.metric("moderator_model_latency_seconds_sum"),
            )
            run = _wrk(
                url,
                "/v1/moderations",
                comments,
                script,
                connections=args.connections,
                seconds=args.duration,
                pause_ms=0,
            )
            run["cache_hits"] = server.metric("moderator_cache_hits_total") - hits0
            batches = server.metric("moderator_api_batch_inputs_count") - batches0
            run["mean_batch"] = (server.metric("moderator_api_batch_inputs_sum") - inputs0) / max(batches, 1)
            run["model_busy"] = (server.metric("moderator_model_latency_seconds_sum") - model0) / (
                run["duration_us"] / 1e6
            )
            sent = min(int(run["requests"]), len(texts))
            if sent == 0:
                raise SystemExit("no request finished during the saturation run; pass a longer --duration")
            run["baseline"] = baseline.rate(texts[:sent])
            run["ratio"] = run["rate"] / run["baseline"]
            rounds.append(run)
        result["saturation_rounds"] = rounds
        saturation = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
        result["saturation"] = saturation

        sent = min(int(saturation["requests"]), len(texts))
        repeats_file = work / "repeats.jsonl"
        repeats_file.write_text("".join(comments.read_text().splitlines(keepends=True)[:sent]))
        hits0, misses0 = (
            server.metric("moderator_cache_hits_total"),
            server.metric("moderator_cache_misses_total"),
        )
        repeats = _wrk(
            url,
            "/v1/moderations",
            repeats_file,
            script,
            connections=args.connections,
            seconds=args.duration,
            pause_ms=0,
        )
        repeats["cache_hits"] = server.metric("moderator_cache_hits_total") - hits0
        repeats["cache_misses"] = server.metric("moderator_cache_misses_total") - misses0
        result["repeats"] = repeats
    finally:
        server.stop()
        redis_server.close()
        baseline.close()
    result["baseline_texts_per_s"] = saturation["baseline"]
    result["load_after"] = _loadavg()
    shutil.rmtree(work, ignore_errors=True)

    lat_rows = []
    for rate, r in latency.items():
        lat_rows.append(
            [
                f"{rate}/s",
                f"{r['rate']:.1f}/s",
                f"{r['p50_us'] / 1000:.1f}",
                f"{r['p90_us'] / 1000:.1f}",
                f"**{r['p99_us'] / 1000:.1f}**",
                f"{r['max_us'] / 1000:.1f}",
                f"{r['model_ms_per_reply']:.1f}",
                r["requests"],
                r["status_errors"] + r["socket_errors"],
            ]
        )
    sat_rows = [
        [
            i + 1,
            f"{r['baseline']:.1f}",
            f"{r['rate']:.1f}",
            f"**{r['ratio']:.2f}×**" if r is saturation else f"{r['ratio']:.2f}×",
            f"{r['p50_us'] / 1000:.0f} / {r['p99_us'] / 1000:.0f}",
            f"{r['mean_batch']:.1f}",
            f"{100 * r['model_busy']:.0f}%",
            int(r["cache_hits"]),
            r["status_errors"] + r["socket_errors"],
        ]
        for i, r in enumerate(rounds)
    ]
    ratio = float(saturation["ratio"])
    hits = sum(int(r["cache_hits"]) for r in rounds)
    misses_only = (
        "all cache misses"
        if hits == 0
        else f"**{hits} cache hits: the pool of {len(texts)} distinct texts ran out, so the ratios below "
        "count Redis hits as throughput and are not judged**"
    )
    saturation_verdict = (
        "not judged (cache hits)"
        if int(saturation["cache_hits"])
        else ("met" if ratio >= SATURATION_GOAL else "not met")
    )
    base = float(saturation["baseline"])
    body = "\n\n".join(
        [
            "Single-reply latency, `POST /v1/replies` (the configured models: one pass of the bundled "
            "multitask model, or the classifier and the judge of a two-model setup), every request a cache miss "
            f"(`wrk -t1`, {args.duration:g} s per rate, pauses calibrated to the target rate and jittered 0.5-1.5× so connections do not arrive in bursts). "
            "*model ms/reply*: the server's own `moderator_model_latency_seconds` per reply, i.e. what the "
            "models took of each request:",
            table(
                [
                    "target",
                    "achieved",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "max ms",
                    "model ms/reply",
                    "requests",
                    "errors",
                ],
                lat_rows,
            ),
            "Saturation, `POST /v1/moderations` with one comment per request "
            f"({args.connections} connections, no pauses, distinct UnSmile dev comments, {misses_only}), each "
            "round followed at once by `moderator score`'s path (`score_lines`, batches of 64, no cache, models "
            "warm, in the benchmark's process) on exactly the texts the round sent; the median round in bold. "
            "*model busy*: the share of the round's wall time the server's model thread was running:",
            table(
                [
                    "round",
                    "score texts/s",
                    "serve texts/s",
                    "ratio",
                    "p50 / p99 ms",
                    "mean micro-batch",
                    "model busy",
                    "cache hits",
                    "errors",
                ],
                sat_rows,
            ),
            f"Repeats: the {min(int(saturation['requests']), len(texts))} texts of the median round again, "
            f"{args.connections} connections: **{repeats['rate']:.1f} texts/s** ({repeats['rate'] / base:.1f}× the "
            f"score path's {base:.1f}), {int(repeats['cache_hits'])} cache hits and {int(repeats['cache_misses'])} "
            f"misses, p50 {repeats['p50_us'] / 1000:.1f} ms, p99 {repeats['p99_us'] / 1000:.1f} ms.",
            f"Load average (1/5/15 min, `uptime`) before: {load_before}; after: {result['load_after']}. The 2 cores "
            "were shared with other work during this run, so every figure here is a lower bound for a quiet "
            "machine. "
            f"Goals: p99 ≤ {LATENCY_GOAL_MS:.0f} ms at 20/s: "
            f"**{'met' if latency[20]['p99_us'] / 1000 <= LATENCY_GOAL_MS else 'not met'}**; "
            f"saturation ≥ {SATURATION_GOAL}× score: **{saturation_verdict}**.",
        ]
    )
    section = Section(
        "api", "HTTP API: `moderator serve` under wrk", body, command_line("bench.api", argv or sys.argv[1:])
    )
    finish(args, section, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
