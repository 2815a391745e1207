"""Model lanes: one session running N single-thread batches at once vs one batch on N intra-op threads.

The shipped multitask model, in this process, on CPU. Each side gets its own session of the same
graph: *one lane* is the shape before lanes (one run at a time, ``--threads`` intra-op threads), *lanes*
is ``--threads`` lanes of one thread each (``MODERATOR_MODEL_LANES``), with the solo session that
runs a lone one-batch call on all of them. Measured per round, sides
alternating so that load from other work skews a round, not the comparison:

- one reply pair at a time (a lone API request): p50 latency;
- reply pairs one per call, from as many callers as the side has lanes (API requests arriving
  together; before lanes the pipeline's one model thread took them one after another): pairs/s;
- comments in calls of ``--small`` and of ``--large`` texts (API micro-batches, ``score`` batches):
  comments/s; the model splits each call into token-budget batches, which lanes run side by side.

    python -m bench.lanes --rounds 2 --texts 256
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    Section,
    Stat,
    base_parser,
    finish,
    guard_training,
    invocation,
    load_data,
    table,
)


def _open(model: Path, lanes: int, threads: int) -> Any:
    from moderator.runtime.metadata import read_metadata
    from moderator.runtime.multitask import EncoderMultitask
    from moderator.runtime.options import RuntimeOptions

    if lanes == 1:
        options = RuntimeOptions(device="cpu", intra_op_threads=threads, lanes=1)
    else:
        # threads left to auto, as MODERATOR_MODEL_LANES alone sets them: one per lane, plus the solo
        # session (every lane's threads) for a call that finds the lanes idle
        options = RuntimeOptions(device="cpu", lanes=lanes)
    return EncoderMultitask(model, read_metadata(model), options)


def _p50_one_at_a_time(model: Any, pairs: Sequence[tuple[str, str]]) -> float:
    times = []
    for pair in pairs:
        started = time.perf_counter()
        model.score_replies([pair])
        times.append((time.perf_counter() - started) * 1000.0)
    return float(statistics.median(times))


def _one_pair(model: Any, pair: Any) -> object:
    return model.score_replies([pair])


def _rate(calls: Sequence[Any], run: Callable[[Any], object], callers: int) -> float:
    started = time.perf_counter()
    if callers == 1:
        for call in calls:
            run(call)
    else:
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(run, calls))
    return len(calls) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=2)
    parser.add_argument("--texts", type=int, default=256, help="comments per round (half as many pairs)")
    parser.add_argument("--threads", type=int, default=2, help="cores to use: lanes, or intra-op threads")
    parser.add_argument("--small", type=int, default=16, help="comments per call, small calls")
    parser.add_argument("--large", type=int, default=64, help="comments per call, large calls")
    parser.add_argument("--model", type=Path, help="a multitask model directory (default: the shipped one)")
    args = parser.parse_args(argv)
    guard_training(args)
    from moderator.settings import DEFAULT_CLASSIFIER

    model_dir = args.model or DEFAULT_CLASSIFIER
    data = load_data()
    comments = data.comments[: args.texts]
    pairs = data.pairs[: max(2, args.texts // 2)]
    sides = {"one lane": _open(model_dir, 1, args.threads), "lanes": _open(model_dir, args.threads, 1)}
    for model in sides.values():  # warm-up: arenas, first shapes
        model.score_comments(comments[:32])
        model.score_replies(pairs[:8])

    figures: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    for r in range(args.rounds):
        for name, model in sides.items():
            got = figures[name]
            got.setdefault("p50_ms", []).append(_p50_one_at_a_time(model, pairs))
            got.setdefault("pairs_per_call", []).append(
                _rate(pairs, functools.partial(_one_pair, model), model.lanes.count)
            )
            for size in (args.small, args.large):
                calls = [comments[i : i + size] for i in range(0, len(comments), size)]
                got.setdefault(f"comments_{size}", []).append(
                    _rate(calls, model.score_comments, 1) * len(comments) / len(calls)
                )
            print(f"round {r + 1}/{args.rounds} {name}: {orjson.dumps(got).decode()}", file=sys.stderr)

    rows = [
        ("one reply pair at a time, p50 ms (lower is better)", "p50_ms", 1),
        ("reply pairs one per call, a caller per lane: pairs/s", "pairs_per_call", 1),
        (f"comments in calls of {args.small}: comments/s", f"comments_{args.small}", 1),
        (f"comments in calls of {args.large}: comments/s", f"comments_{args.large}", 1),
    ]
    body_rows = []
    ratios: dict[str, float] = {}
    for label, key, digits in rows:
        one, laned = Stat.of(figures["one lane"][key]), Stat.of(figures["lanes"][key])
        ratio = laned.median / one.median
        ratios[key] = ratio
        body_rows.append([label, one.fmt(digits), laned.fmt(digits), f"{ratio:.2f}×"])
    body = table(
        [
            "measure",
            f"1 lane × {args.threads} threads",
            f"{args.threads} lanes × 1 thread",
            "lanes ÷ one lane",
        ],
        body_rows,
    )
    body += (
        f"\n\nShipped multitask model, {len(comments)} UnSmile dev comments and {len(pairs)} KoSBi dev "
        f"pairs per round, {args.rounds} rounds, sides alternating; median (min–max) over rounds."
    )
    section = Section(
        "lanes", "Model lanes: runs side by side vs threads in one run", body, invocation("bench.lanes", argv)
    )
    finish(args, section, {"figures": figures, "ratios": ratios})
    print(orjson.dumps({"ratios": ratios}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
