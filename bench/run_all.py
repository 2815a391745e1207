"""Run the whole benchmark suite, one benchmark per process, and write ``docs/benchmarks.md``.

    python -m bench            # or: make bench; the whole suite, tens of minutes on 2 cores
    python -m bench --quick    # or: make bench-quick; tiny sizes, one round, a few minutes: a smoke test
                               # that writes build/bench/quick/ and build/bench/quick.md, not docs/

Every benchmark rewrites its own section inside the generated block of the document (other sections
of the file are left alone); this runner then writes the summary (goals vs results, the machine, the
commands) at the top of the block. A benchmark that fails is reported in the summary and the others
still run. The suite refuses to time while a model training runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DOC_FILE,
    REPO,
    RESULTS_DIR,
    Section,
    command_line,
    machine_info,
    table,
    training_running,
    write_section,
)

#: (section name, module, full-run args, quick args, timeout s). Order: cheap and CPU-only first.
PLAN: tuple[tuple[str, str, list[str], list[str], int], ...] = (
    ("model_path", "bench.model_path", ["--texts", "384", "--rounds", "3"], ["--texts", "64", "--rounds", "1"], 900),
    ("encoder_ort", "bench.encoder_ort_vs_torch", ["--texts", "512", "--rounds", "3"], ["--texts", "64", "--rounds", "1"], 900),
    ("overhead", "bench.overhead", ["--messages", "100000", "--rounds", "3"], ["--messages", "2000", "--rounds", "1"], 900),
    ("pipeline_micro", "bench.pipeline_micro", ["--records", "50000", "--rounds", "3"], ["--records", "4000", "--rounds", "1"], 600),
    ("cache", "bench.cache_hits", ["--comments", "600", "--replies", "200", "--rounds", "3"], ["--comments", "64", "--replies", "32", "--rounds", "1"], 900),
    ("judge_prefix", "bench.judge_prefix", ["--pairs", "48", "--rounds", "2"], ["--pairs", "8", "--rounds", "1"], 900),
    ("latency", "bench.latency", ["--seconds", "12", "--rounds", "3"], ["--seconds", "3", "--rounds", "1", "--windows", "5"], 1200),
    ("scale_out", "bench.scale_out", ["--comments", "800", "--rounds", "2"], ["--comments", "64", "--rounds", "1"], 1200),
    ("lanes", "bench.lanes", ["--texts", "256", "--rounds", "3"], ["--texts", "32", "--rounds", "1"], 900),
    ("score_path", "bench.score_path", ["--comments", "3000", "--replies", "2000", "--rounds", "3"], ["--comments", "96", "--replies", "64", "--rounds", "1"], 900),
)  # fmt: skip

GOALS = {
    "model_path": "≥3× a Hugging Face pipeline",
    "encoder_ort": "(engine detail for 1)",
    "overhead": "≥0.5× the raw aiokafka loop",
    "pipeline_micro": "≥100k records/s on one core",
    "cache": "≥10× all-repeats vs none",
    "judge_prefix": "≥10× prefix cache vs full prompt",
    "latency": "p99 ≤150 ms at 20 replies/s",
    "scale_out": "1 vs 2 workers; GPU projection",
    "lanes": "(engine detail: lanes vs intra-op threads)",
    "score_path": "≥272 comments/s, ≥250 replies/s (#11, #12)",
}


EARLIER = " (earlier run; see its section)"


def summary_rows(doc: Path) -> dict[str, str]:
    """Benchmark name → result cell of the summary table already in ``doc`` (empty if none)."""
    if not doc.exists():
        return {}
    text = doc.read_text(encoding="utf-8")
    begin, end = "<!-- bench:summary:begin -->", "<!-- bench:summary:end -->"
    if begin not in text or end not in text:
        return {}
    block = text.split(begin, 1)[1].split(end, 1)[0]
    names = {name for name, *_ in PLAN}
    rows: dict[str, str] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in names:
            rows[cells[0]] = cells[2]
    return rows


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _shown(path: Path) -> Path:
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def headline(name: str) -> str:
    """One cell: the benchmark's main figure, computed from its saved raw results."""
    data = _load(name)
    if data is None:
        return "no result"
    try:
        if name == "model_path":
            s = data["seconds"]
            return f"{_median([h / o for o, h in zip(s['ort'], s['hf'], strict=True)]):.2f}×"
        if name == "overhead":
            per = _median([w / r for w, r in zip(data["worker"], data["per-record"], strict=True)])
            bat = _median([w / r for w, r in zip(data["worker"], data["batched"], strict=True)])
            return (
                f"{_median(data['worker']):,.0f} msg/s: {per:.2f}× per-record loop, {bat:.2f}× batched loop"
            )
        if name == "pipeline_micro":
            return f"{_median(data['pipeline']):,.0f} records/s"
        if name == "cache":
            r = data["ratio_median"]
            return f"comments {r['comment']:.1f}×, replies {r['reply']:.1f}×"
        if name == "judge_prefix":
            r = data["ratios"]
            return ", ".join(f"{k} {v:.1f}×" for k, v in r.items())
        if name == "latency":
            from bench.common import percentile

            def pick(table: dict[str, Any], value: float) -> Any:
                return next(v for k, v in table.items() if float(k) == float(value))

            w = float(data["default_window_ms"])
            rounds = pick(pick(data["latency_ms"], w), 20)
            p99 = _median([percentile(x, 99) for x in rounds])
            return f"p99 {p99:.0f} ms at 20/s ({w:g} ms window)"
        if name == "scale_out":
            rates = data["rates"]
            if not any(rates.values()):
                return "projection only"
            one, two = (_median(v) for k, v in rates.items() if k.startswith(("1 worker × 2", "2 workers")))
            return f"2 workers {two / one:.2f}× 1 worker (same 2 cores)"
        if name == "score_path":
            return (
                f"{data['comments_per_s']:,.0f} comments/s, {data['replies_per_s']:,.0f} replies/s "
                f"(`{data['device_kind']}`)"
            )
        if name == "encoder_ort":
            return "see section"
        if name == "lanes":
            r = data["ratios"]
            return (
                f"lanes ÷ one lane: pairs/s {r['pairs_per_call']:.2f}×, small calls "
                f"{r[next(k for k in r if k.startswith('comments_'))]:.2f}×, lone pair p50 {r['p50_ms']:.2f}× the time"
            )
    except (KeyError, ValueError, TypeError, ZeroDivisionError, StopIteration) as exc:
        return f"unreadable result ({type(exc).__name__})"
    return "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (smoke test)")
    parser.add_argument(
        "--doc", type=Path, default=DOC_FILE, help="document to write (quick: build/bench/quick.md)"
    )
    parser.add_argument(
        "--only", nargs="*", choices=[p[0] for p in PLAN], help="run only these (none: summary only)"
    )
    parser.add_argument("--allow-training", action="store_true")
    parser.add_argument("--classifier", help="classifier model dir for every benchmark that loads one")
    parser.add_argument("--judge", help="judge model dir for every benchmark that loads one")
    parser.add_argument("--checkpoint", help="PyTorch checkpoint of the classifier (benchmark 1's HF side)")
    args = parser.parse_args(argv)
    if args.quick:
        # a smoke test must not overwrite the measured figures: its own results folder and document
        quick_dir = REPO / "build" / "bench" / "quick"
        os.environ["BENCH_RESULTS_DIR"] = str(quick_dir)
        global RESULTS_DIR
        RESULTS_DIR = quick_dir
        if args.doc == DOC_FILE:
            args.doc = REPO / "build" / "bench" / "quick.md"
    running = training_running()
    if running and not args.allow_training:
        raise SystemExit(
            "a model training is running; benchmarks would be meaningless:\n  " + "\n  ".join(running)
        )
    started = time.time()
    status: dict[str, str] = {}
    commands: dict[str, str] = {}
    for name, module, full, quick, timeout in PLAN:
        if args.only is not None and name not in args.only:
            continue
        extra = list(quick if args.quick else full)
        extra += ["--doc", str(args.doc)]
        if args.allow_training:
            extra.append("--allow-training")
        if name in ("model_path", "cache", "latency", "scale_out") and args.classifier:
            extra += ["--classifier", args.classifier]
        if name == "model_path" and args.checkpoint:
            extra += ["--checkpoint", args.checkpoint]
        if name in ("cache", "latency", "scale_out") and args.judge:
            extra += ["--judge", args.judge]
        cmd = [sys.executable, "-m", module, *extra]
        commands[name] = command_line(module, extra)
        print(f"== {name}: {commands[name]}", file=sys.stderr, flush=True)
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, cwd=REPO, timeout=timeout, check=False)
            status[name] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            status[name] = f"timed out after {timeout} s"
        print(f"== {name}: {status[name]} in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    total = time.time() - started
    invocation = command_line("bench", argv if argv is not None else sys.argv[1:])
    m = machine_info()
    rows = []
    previous = summary_rows(args.doc)
    for name, *_ in PLAN:
        if name in status:
            rows.append([name, GOALS.get(name, ""), headline(name) if status[name] == "ok" else status[name]])
        elif _load(name) is not None:
            rows.append([name, GOALS.get(name, ""), headline(name) + EARLIER])
        elif name in previous:  # no raw result on this machine (a fresh clone): the summary's own row
            cell = previous[name]
            rows.append([name, GOALS.get(name, ""), cell if cell.endswith(EARLIER) else cell + EARLIER])
    body = (
        table(["benchmark", "goal", "result (median)"], rows, "lll")
        + "\n\nMachine: "
        + ", ".join(f"{k} {v}" for k, v in m.items())
        + f".\n\nThe whole suite is `python -m bench` (`make bench`). This summary was written by "
        f"`{invocation}`, which ran {', '.join(status) or 'no benchmark'} in {total / 60:.1f} min; rows marked "
        "“earlier run” keep the figures of their own last run. Each benchmark also runs alone with the "
        f"command shown in its section; raw per-round figures are saved in `{_shown(RESULTS_DIR)}/*.json`."
    )
    write_section(Section("summary", "Summary", body, invocation), args.doc)
    print(body)
    return 0 if all(v == "ok" for v in status.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
