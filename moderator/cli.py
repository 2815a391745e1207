"""The ``moderator`` command: worker, score, eval, produce, tail, replay, demo.

Flags override ``MODERATOR_*`` environment variables; secrets are read from the environment only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from moderator.settings import Settings
from topics import Reason


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("settings (override MODERATOR_* variables)")
    g.add_argument("--broker", help="Kafka bootstrap URL, e.g. kafka://127.0.0.1:9092")
    g.add_argument("--redis-url", dest="redis_url", help="Redis URL for the verdict cache ('' disables it)")
    g.add_argument("--classifier", dest="classifier_path", type=Path, help="hate-speech classifier model dir")
    g.add_argument("--judge", dest="judge_path", type=Path, help="safety judge model dir")
    g.add_argument("--policy", dest="policy_path", type=Path, help="policy JSON file")
    g.add_argument("--device", choices=["auto", "cuda", "cpu"], help="ONNX Runtime device")
    g.add_argument("--batch-size", dest="batch_size", type=int, help="records per batch (default 64)")
    g.add_argument(
        "--batch-window-ms", dest="batch_window_ms", type=float, help="batch time window (default 20)"
    )
    g.add_argument(
        "--max-batch-tokens", dest="max_batch_tokens", type=int, help="padded-token cap per model call"
    )
    g.add_argument("--log-level", dest="log_level", help="debug, info, warning, error")


def _settings(args: argparse.Namespace) -> Settings:
    names = (
        "broker",
        "redis_url",
        "classifier_path",
        "judge_path",
        "policy_path",
        "device",
        "batch_size",
        "batch_window_ms",
        "max_batch_tokens",
        "log_level",
        "web_port",
        "web_host",
        "app_id",
    )
    overrides = {n: getattr(args, n, None) for n in names}
    return Settings.from_env().with_overrides(**overrides)


def _open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def cmd_worker(args: argparse.Namespace) -> int:
    from moderator.stream.worker import run_worker

    return run_worker(_settings(args))


def cmd_score(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from moderator.core.score import score_lines
    from moderator.metrics import Metrics
    from moderator.stream.worker import build_pipeline
    from topics import dumps

    settings = _settings(args)
    pipeline = build_pipeline(settings, Metrics(), use_cache=not args.no_cache, shared_ids=args.shared_ids)
    out = sys.stdout.buffer
    dead_out = open(args.dead_letter, "wb") if args.dead_letter else sys.stderr.buffer  # noqa: SIM115
    show = args.input != "-" and sys.stderr.isatty()

    async def run() -> tuple[int, int]:
        n_verdicts = n_dead = 0
        with (
            _open_input(args.input) as f,
            tqdm(desc="scoring", unit="rec", disable=not show, file=sys.stderr) as bar,
        ):
            async for result in score_lines(pipeline, args.kind, f, batch_size=settings.batch_size):
                for verdict in result.verdicts:
                    out.write(dumps(verdict.to_dict()) + b"\n")
                for dead in result.dead_letters:
                    dead_out.write(dumps(dead.to_dict()) + b"\n")
                n_verdicts += len(result.verdicts)
                n_dead += len(result.dead_letters)
                bar.update(len(result.verdicts) + len(result.dead_letters))
        out.flush()
        dead_out.flush()
        await pipeline.close()
        return n_verdicts, n_dead

    n_verdicts, n_dead = asyncio.run(run())
    print(f"{n_verdicts} verdicts, {n_dead} dead letters", file=sys.stderr)
    return 0


def _split_rows(split: str | None, part: str) -> list[int] | None:
    if not split:
        return None
    import orjson

    data = orjson.loads(Path(split).read_bytes())
    if part not in data:
        raise ValueError(
            f"{split}: no part {part!r} (has {', '.join(k for k in data if isinstance(data[k], list))})"
        )
    return [int(i) for i in data[part]]


def _model_thresholds(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "thresholds.json"
    if not path.is_file():
        return {}
    import orjson

    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def cmd_eval(args: argparse.Namespace) -> int:
    from moderator.core.policy import load_policy
    from moderator.evaluation import evaluate_classifier, evaluate_judge, format_report
    from moderator.runtime.loader import load_classifier, load_judge
    from topics import HATE_LABEL_KEYS, dumps

    settings = _settings(args)
    policy = load_policy(settings.policy_path)
    rows = _split_rows(args.split, args.part)
    report: dict[str, Any]
    if args.kind == "comment":
        classifier = load_classifier(settings.classifier_path, settings.runtime)
        # the policy's thresholds for the hate labels; `clean` (never a category) from the model's calibration
        thresholds = dict(_model_thresholds(settings.classifier_path).get("labels", {}))
        thresholds.update({k: policy.labels[k].threshold for k in HATE_LABEL_KEYS})
        report = evaluate_classifier(classifier, Path(args.input), thresholds, rows)
    else:
        judge = load_judge(settings.judge_path, settings.runtime)
        report = evaluate_judge(judge, Path(args.input), policy.judge_review, rows)
    if args.json:
        sys.stdout.buffer.write(dumps(report) + b"\n")
    else:
        print(format_report(report))
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from moderator.stream.clients import produce_lines

    settings = _settings(args)
    topic = args.topic or (settings.topic_comments if args.kind == "comment" else settings.topic_replies)
    with _open_input(args.input) as f, tqdm(desc=f"producing to {topic}", unit="rec", file=sys.stderr) as bar:
        sent = asyncio.run(produce_lines(settings.broker, topic, f, progress=bar))
    print(f"{sent} records sent to {topic}", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from moderator.stream.clients import follow

    settings = _settings(args)
    topics = args.topic or [settings.topic_verdicts]

    async def run() -> None:
        shown = 0
        async for topic, _key, value in follow(
            settings.broker, topics, from_beginning=not args.latest, idle_timeout_s=args.idle_timeout
        ):
            prefix = f"{topic}\t" if len(topics) > 1 else ""
            sys.stdout.write(prefix + value.decode("utf-8", errors="replace") + "\n")
            sys.stdout.flush()
            shown += 1
            if args.limit and shown >= args.limit:
                return

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 130
    return 0


def _timestamp(value: str) -> float:
    """``--since``/``--until``: seconds since the epoch, or an ISO 8601 date/time (UTC unless it says)."""
    from datetime import UTC, datetime

    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither epoch seconds nor an ISO date/time (e.g. 2026-11-29T21:00)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def cmd_replay(args: argparse.Namespace) -> int:
    from moderator.stream.replay import ReplayFilter, replay

    settings = _settings(args)
    keep = ReplayFilter(frozenset(args.reason or ()), args.since, args.until)
    report = asyncio.run(replay(settings.broker, settings.topics, keep, dry_run=args.dry_run))
    if args.dry_run:
        print("dry run: nothing sent", file=sys.stderr)
    for line in report.lines():
        print(line, file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from moderator.local.demo import run_demo

    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the live summary is the demo's output
    return run_demo(_settings(args), timeout_s=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moderator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "worker", help="run the faust worker (reads comments and llm-replies, writes verdicts)"
    )
    _common(p)
    p.add_argument("--web-port", dest="web_port", type=int, help="metrics/health port (default 6066)")
    p.add_argument("--web-host", dest="web_host", help="metrics/health bind address (default 127.0.0.1)")
    p.add_argument("--app-id", dest="app_id", help="consumer group / app id (default moderator)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("score", help="score a JSONL file with the worker's code, minus Kafka")
    _common(p)
    p.add_argument("--kind", choices=["comment", "reply"], required=True)
    p.add_argument("--input", required=True, help="JSONL file, or - for stdin")
    p.add_argument("--no-cache", action="store_true", help="do not use Redis even if configured")
    p.add_argument("--dead-letter", help="write dead letters here (default: stderr)")
    p.add_argument(
        "--shared-ids",
        action="store_true",
        help="share the id registry (revisions per id) with running workers through Redis; "
        "by default score remembers ids only within this run",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("eval", help="precision/recall/F1, LRAP, AUROC on a labelled file")
    _common(p)
    p.add_argument("--kind", choices=["comment", "reply"], required=True)
    p.add_argument("--input", required=True, help="UnSmile TSV, KoSBi JSON, or labelled JSONL")
    p.add_argument(
        "--split",
        help="a split file (JSON of row-index lists), e.g. ../shared/data/unsmile/train_dev_split.json",
    )
    p.add_argument("--part", default="dev", help="which list of --split to score (default dev)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("produce", help="send a JSONL file to a topic")
    _common(p)
    p.add_argument("--kind", choices=["comment", "reply"], default="comment")
    p.add_argument("--topic", help="topic (default: the input topic for --kind)")
    p.add_argument("--input", required=True, help="JSONL file, or - for stdin")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("tail", help="follow the verdicts topic")
    _common(p)
    p.add_argument("--topic", action="append", help="topic(s) to follow (default: verdicts)")
    p.add_argument("--latest", action="store_true", help="only new records")
    p.add_argument("--limit", type=int, default=0, help="stop after N records")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after N seconds without records")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("replay", help="re-feed dead-lettered records to their input topics")
    _common(p)
    p.add_argument(
        "--reason",
        action="append",
        choices=[r.value for r in Reason],
        help="only dead letters with this reason (repeatable; default: all)",
    )
    p.add_argument("--since", type=_timestamp, help="only dead letters at or after this time")
    p.add_argument("--until", type=_timestamp, help="only dead letters before this time")
    p.add_argument("--dry-run", action="store_true", help="count what would be sent, send nothing")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("demo", help="local broker + Redis + worker + bundled Korean sample, live summary")
    _common(p)
    p.add_argument("--timeout", type=float, default=600.0, help="give up after N seconds")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, (getattr(args, "log_level", None) or "INFO").upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from moderator.core.policy import PolicyError
    from moderator.runtime.errors import ModelLoadError, ProviderError

    try:
        return int(args.func(args))
    except (ModelLoadError, ProviderError, PolicyError, ValueError) as exc:
        print(f"moderator {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
