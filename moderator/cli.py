"""The ``moderator`` command: worker, serve, score, eval, produce, tail, replay, demo, schema, dashboard,
dashboard-user, export-reviews.

Flags override ``MODERATOR_*`` environment variables; secrets are read from the environment only.
A user's mistake ends in one line and an exit code from ``moderator.exits``; a bug keeps its traceback.
A new subcommand: a ``cmd_*`` function and an ``add_command`` entry with the option groups it reads
(``moderator.cli_options``); user mistakes raise ``moderator.exits.UserError`` subclasses.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from moderator.cli_options import (
    Parser,
    add_batch_options,
    add_broker_options,
    add_command,
    add_model_options,
    add_redis_options,
    at_least,
    settings_from,
    timestamp,
)
from moderator.exits import (
    MEANINGS,
    BrokerUnreachable,
    ExitCode,
    InputFormatError,
    InputUnreadable,
    NothingScored,
    UsageError,
    UserError,
    check_readable,
    check_writable,
    known_user_errors,
)
from topics import Reason

if TYPE_CHECKING:
    from moderator.settings import Settings


def _open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


# ------------------------------------------------------------------------------------------- commands


def cmd_worker(args: argparse.Namespace) -> int:
    from moderator.stream.worker import run_worker

    return run_worker(settings_from(args))


#: What a line needs per kind, for the hint when nothing could be scored.
_REQUIRED = {"comment": '{"id": ..., "text": ...}', "reply": '{"id": ..., "prompt": ..., "reply": ...}'}


def _dead_letter_line(dead: dict[str, Any], prefix: str = "dead letter: ") -> str:
    """A dead letter for a person reading a terminal: where, why, which id; never the base64 original."""
    source = dead.get("source") or {}
    where = f"line {source['offset']}" if "offset" in source else "?"
    rid = f" (id {dead['id']})" if dead.get("id") else ""
    return f"{prefix}{where}: {dead['reason']}: {dead['detail']}{rid}"


def cmd_serve(args: argparse.Namespace) -> int:
    from moderator.api.server import run_server

    return run_server(settings_from(args))


async def _redis_answers(settings: Settings) -> bool:
    """Whether the verdict cache's Redis answers a PING within a short wait."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    kwargs: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    if settings.redis_ssl_ca_certs:
        kwargs["ssl_ca_certs"] = settings.redis_ssl_ca_certs
    try:
        client = aioredis.from_url(settings.redis_url, **kwargs)
    except ValueError:
        return False
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


def _without_credentials(url: str) -> str:
    """``redis://user:secret@host:6379/0`` → ``redis://host:6379/0``: never print a password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def cmd_score(args: argparse.Namespace) -> int:
    check_readable(args.input)
    if args.dead_letter:
        check_writable(args.dead_letter, "--dead-letter")
    settings = settings_from(args)

    from tqdm import tqdm

    from moderator.core.score import score_lines
    from moderator.metrics import Metrics
    from moderator.stream.worker import build_pipeline
    from topics import dumps

    use_cache = not args.no_cache
    if use_cache and settings.redis_url and not args.shared_ids and not asyncio.run(_redis_answers(settings)):
        # offline scoring on a machine without Redis is the common case: one line, not a warning per retry
        print(
            f"moderator score: no Redis answers at {_without_credentials(settings.redis_url)}; scoring "
            "without the verdict cache (--no-cache skips this check)",
            file=sys.stderr,
        )
        use_cache = False
    pipeline = build_pipeline(settings, Metrics(), use_cache=use_cache, shared_ids=args.shared_ids)
    out = sys.stdout.buffer
    dead_file: IO[bytes] | None = open(args.dead_letter, "wb") if args.dead_letter else None  # noqa: SIM115
    show = args.input != "-" and sys.stderr.isatty()
    source = "stdin" if args.input == "-" else args.input
    first_dead: dict[str, Any] | None = None

    async def run() -> tuple[int, int]:
        nonlocal first_dead
        n_verdicts = n_dead = 0
        with (
            _open_input(args.input) as f,
            tqdm(desc="scoring", unit="rec", disable=not show, file=sys.stderr) as bar,
        ):
            async for result in score_lines(
                pipeline, args.kind, f, batch_size=settings.batch_size, source=source
            ):
                for verdict in result.verdicts:
                    out.write(dumps(verdict.to_dict()) + b"\n")
                for dead in result.dead_letters:
                    record = dead.to_dict()
                    first_dead = first_dead or record
                    if dead_file is not None:
                        dead_file.write(dumps(record) + b"\n")
                    else:
                        bar.write(_dead_letter_line(record), file=sys.stderr)
                n_verdicts += len(result.verdicts)
                n_dead += len(result.dead_letters)
                bar.update(len(result.verdicts) + len(result.dead_letters))
        out.flush()
        await pipeline.close()
        return n_verdicts, n_dead

    try:
        n_verdicts, n_dead = asyncio.run(run())
    finally:
        if dead_file is not None:
            dead_file.close()
    where = f" (in {args.dead_letter})" if args.dead_letter else ""
    print(f"{n_verdicts} verdicts, {n_dead} dead letters{where}", file=sys.stderr)
    if n_dead and not n_verdicts and first_dead is not None:
        hint = (
            f"--input must be JSONL, one {_REQUIRED[args.kind]} object per line (not CSV or TSV)"
            if first_dead["reason"] in ("invalid_json", "not_an_object", "invalid_utf8")
            else f"for --kind {args.kind} each line needs {_REQUIRED[args.kind]}; see each dead letter's reason"
        )
        raise NothingScored(
            f"every record was dead-lettered ({n_dead}); the first, {_dead_letter_line(first_dead, '')}", hint
        )
    return 0


def _split_rows(split: str | None, part: str) -> list[int] | None:
    if not split:
        return None
    import orjson

    try:
        data = orjson.loads(Path(split).read_bytes())
        parts = [k for k in data if isinstance(data[k], list)]
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise InputFormatError(
            f"--split {split}: not a JSON object of lists ({exc})", "pass a split file"
        ) from None
    if part not in data:
        raise UsageError(
            f"--split {split} has no part {part!r}", f"pass --part with one of {', '.join(parts)}"
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
    if args.sources:
        if args.kind or args.input or args.split:
            raise UsageError("--sources takes no --kind, --input or --split", "give one or the other")
        return _eval_sources(args, settings_from(args))
    if not args.kind or not args.input:
        raise UsageError(
            "give --kind and --input (a labelled file), or --sources DATA_DIR", "see `moderator eval --help`"
        )
    check_readable(args.input)
    if args.split:
        check_readable(args.split, "--split")
    settings = settings_from(args)
    rows = _split_rows(args.split, args.part)

    from moderator.core.policy import load_policy
    from moderator.evaluation import (
        evaluate_classifier,
        evaluate_judge,
        format_report,
        read_comments,
        read_pairs,
    )
    from moderator.runtime.loader import load_classifier, load_judge
    from topics import HATE_LABEL_KEYS, dumps

    # read (and so check) the labelled file before any model loads: a wrong file fails in a moment
    data = read_comments(Path(args.input)) if args.kind == "comment" else read_pairs(Path(args.input))
    n = len(data.texts) if args.kind == "comment" else len(data.replies)  # type: ignore[union-attr]
    if rows is not None and rows and not 0 <= min(rows) <= max(rows) < n:
        raise UsageError(
            f"--split {args.split} part {args.part!r} has row indexes beyond {args.input}'s {n} rows",
            "pass the split file made for this input",
        )
    policy = load_policy(settings.policy_path)
    report: dict[str, Any]
    if args.kind == "comment":
        classifier = load_classifier(settings.classifier_path, settings.runtime)
        # the policy's thresholds for the hate labels; `clean` (never a category) from the model's calibration
        thresholds = dict(_model_thresholds(settings.classifier_path).get("labels", {}))
        thresholds.update({k: policy.labels[k].threshold for k in HATE_LABEL_KEYS})
        report = evaluate_classifier(classifier, data, thresholds, rows)  # type: ignore[arg-type]
    else:
        judge = load_judge(settings.judge_path, settings.runtime)
        report = evaluate_judge(judge, data, policy.judge_review, rows)  # type: ignore[arg-type]
    report["file"] = args.input
    if args.json:
        sys.stdout.buffer.write(dumps(report) + b"\n")
    else:
        print(format_report(report))
    return 0


def _eval_sources(args: argparse.Namespace, settings: Any) -> int:
    """The multitask model's full dev report (every figure of its model card) on ``--sources``."""
    import json

    from moderator.runtime.loader import load_classifier
    from topics import dumps

    data = Path(args.sources)
    if not data.is_dir():
        raise InputUnreadable(
            f"--sources {data}: not a directory", "pass the data directory (../shared/data)"
        )
    classifier = load_classifier(settings.classifier_path, settings.runtime)
    model = getattr(classifier, "multitask", None)
    if model is None:
        raise UsageError(
            f"--sources needs an encoder-multitask model; {settings.classifier_path} is not one",
            "point --classifier (or MODERATOR_CLASSIFIER_PATH) at models/moderator-multitask-e5-small",
        )
    try:
        from onnx_export.train.report import multitask_report, read_thresholds
    except ImportError as exc:  # the report reads the training sources with the export extra's helpers
        raise UsageError(
            f"moderator eval --sources needs the repository's onnx_export package ({exc})",
            "run it from a checkout of the repository (pip install -e .)",
        ) from None
    report = multitask_report(model, data, read_thresholds(settings.classifier_path))
    if args.json:
        sys.stdout.buffer.write(dumps(report) + b"\n")
    else:
        print(json.dumps(report, ensure_ascii=False, indent=1, default=float))
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    check_readable(args.input)
    settings = settings_from(args)

    from tqdm import tqdm

    from moderator.stream.clients import produce_lines

    topic = args.topic or (settings.topic_comments if args.kind == "comment" else settings.topic_replies)
    with (
        _open_input(args.input) as f,
        tqdm(desc=f"producing to {topic}", unit="rec", file=sys.stderr, delay=1.0) as bar,
    ):
        sent = asyncio.run(produce_lines(settings.broker, topic, f, progress=bar))
    print(f"{sent} records sent to {topic}", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    from moderator.stream.clients import follow

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

    asyncio.run(run())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    from moderator.stream.replay import ReplayFilter, replay

    keep = ReplayFilter(frozenset(args.reason or ()), args.since, args.until)
    report = asyncio.run(replay(settings.broker, settings.topics, keep, dry_run=args.dry_run))
    if args.dry_run:
        print("dry run: nothing sent", file=sys.stderr)
    for line in report.lines():
        print(line, file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    from moderator.local.demo import run_demo

    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the live summary is the demo's output
    return run_demo(settings, timeout_s=args.timeout)


def cmd_schema(args: argparse.Namespace) -> int:
    from topics.schema import write_all

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", "pass a directory")
    for path in write_all(out):
        print(path)
    return 0


# --------------------------------------------------------------------------------------------- parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moderator")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def cmd_dashboard(args: argparse.Namespace) -> int:
    from moderator.dashboard.server import run_dashboard

    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return run_dashboard(settings_from(args))


def cmd_dashboard_user(args: argparse.Namespace) -> int:
    from moderator.dashboard.cli import manage_users

    return manage_users(settings_from(args), args)


def cmd_export_reviews(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from moderator.dashboard.export import export_reviews
    from moderator.dashboard.server import client_kwargs

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its connection errors end in our one line
    settings = settings_from(args)
    try:
        summary = asyncio.run(
            export_reviews(settings.broker, settings.topic_reviews, Path(args.out), client_kwargs(settings))
        )
    except KafkaError as exc:
        raise BrokerUnreachable(
            f"broker {settings.broker}: {exc}", "start the broker or pass --broker"
        ) from None
    print(summary.line(), file=sys.stderr)
    return 0


def _dashboard_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dashboard store (overrides MODERATOR_DASHBOARD_DB)")
    g.add_argument("--db", dest="dashboard_db", type=Path, help="dashboard sqlite file (index and accounts)")


#: what ``moderator --help`` says: the commands, and where settings come from (the module docstring's
#: other lines are for developers)
DESCRIPTION = (
    "Korean-first content moderation: a stream worker, an HTTP API, offline scoring and a review dashboard.\n\n"
    "Flags override MODERATOR_* environment variables (README, Configuration); secrets are read from the\n"
    "environment only. `moderator COMMAND --help` describes one command."
)


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {int(code):>3}  {text}" for code, text in MEANINGS.items())
    parser = Parser(
        prog="moderator",
        description=DESCRIPTION,
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"moderator {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_command(
        sub,
        "worker",
        help="run the stream worker: read comments and llm-replies, write verdicts",
        examples=["moderator worker", "moderator worker --broker kafka://kafka:9092 --web-host 0.0.0.0"],
        func=cmd_worker,
        log_level="info",
    )
    add_broker_options(p)
    add_redis_options(p)
    add_model_options(p)
    add_batch_options(p, window=True)
    g = p.add_argument_group("worker")
    g.add_argument("--web-port", dest="web_port", type=at_least(1), help="metrics/health port (default 6066)")
    g.add_argument("--web-host", dest="web_host", help="metrics/health bind address (default 127.0.0.1)")
    g.add_argument("--app-id", dest="app_id", help="consumer group / app id (default moderator)")

    p = add_command(
        sub,
        "serve",
        help="HTTP API: OpenAI-compatible /v1/moderations, native verdicts, streaming rail (docs/api.md)",
        examples=["moderator serve", "MODERATOR_API_KEYS=k1,k2 moderator serve --host 0.0.0.0 --port 8080"],
        func=cmd_serve,
        log_level="info",
    )
    add_redis_options(p)
    add_model_options(p)
    add_batch_options(p, window=False)
    g = p.add_argument_group("HTTP API (keys: MODERATOR_API_KEYS / MODERATOR_API_KEYS_FILE only)")
    g.add_argument("--host", dest="api_host", help="bind address (default 127.0.0.1; others need API keys)")
    g.add_argument("--port", dest="api_port", type=at_least(1), help="port (default 8080)")

    p = add_command(
        sub,
        "score",
        help="score a JSONL file with the worker's code, minus Kafka (verdicts on stdout)",
        examples=[
            "moderator score --kind comment --input comments.jsonl > verdicts.jsonl",
            "moderator score --kind reply --input replies.jsonl --dead-letter dead.jsonl --no-cache",
        ],
        func=cmd_score,
    )
    p.add_argument("--kind", choices=["comment", "reply"], required=True)
    p.add_argument("--input", required=True, help="JSONL file, or - for stdin")
    p.add_argument("--no-cache", action="store_true", help="do not use Redis even if configured")
    p.add_argument(
        "--dead-letter",
        help="write dead-letter records (JSONL) here (default: one summary line each on stderr)",
    )
    p.add_argument(
        "--shared-ids",
        action="store_true",
        help="share the id registry (revisions per id) with running workers through Redis; "
        "by default score remembers ids only within this run",
    )
    add_redis_options(p)
    add_model_options(p)
    add_batch_options(p, window=False)

    p = add_command(
        sub,
        "eval",
        help="precision/recall/F1, LRAP, AUROC of the models on a labelled file",
        examples=[
            "moderator eval --kind comment --input ../shared/data/unsmile/unsmile_train_v1.0.tsv "
            "--split ../shared/data/unsmile/train_dev_split.json",
            "moderator eval --kind reply --input onnx_export/outside/replies.jsonl --json",
        ],
        func=cmd_eval,
    )
    p.add_argument("--kind", choices=["comment", "reply"])
    p.add_argument(
        "--input",
        help='comments: UnSmile .tsv or JSONL {"text","labels"}; replies: KoSBi .json or JSONL {"prompt","reply","unsafe"}',
    )
    p.add_argument("--split", help="a split file (JSON of row-index lists)")
    p.add_argument(
        "--sources",
        help="data directory (../shared/data): the multitask model's dev report over every source, "
        "the figures of its model card (instead of --kind/--input)",
    )
    p.add_argument("--part", default="dev", help="which list of --split to score (default dev)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_model_options(p)
    add_batch_options(p, window=False)

    p = add_command(
        sub,
        "produce",
        help="send a JSONL file to a topic (keyed by each record's id)",
        examples=["moderator produce --kind reply --input replies.jsonl --broker kafka://127.0.0.1:29092"],
        func=cmd_produce,
    )
    p.add_argument("--kind", choices=["comment", "reply"], default="comment")
    p.add_argument("--topic", help="topic (default: the input topic for --kind)")
    p.add_argument("--input", required=True, help="JSONL file, or - for stdin")
    add_broker_options(p)

    p = add_command(
        sub,
        "tail",
        help="print records of the verdicts topic (or others) as they arrive",
        examples=[
            "moderator tail --topic verdicts.flagged --latest",
            "moderator tail --limit 10 --idle-timeout 5",
        ],
        func=cmd_tail,
    )
    p.add_argument("--topic", action="append", help="topic(s) to follow (default: verdicts)")
    p.add_argument("--latest", action="store_true", help="only new records")
    p.add_argument("--limit", type=at_least(0), default=0, help="stop after N records")
    p.add_argument(
        "--idle-timeout", type=at_least(0, float), default=None, help="stop after N seconds without records"
    )
    add_broker_options(p)

    p = add_command(
        sub,
        "replay",
        help="re-feed dead-lettered records to their input topics, and say what was sent",
        examples=[
            "moderator replay --reason model_error --dry-run",
            "moderator replay --reason model_error --since 2026-11-29T08:00 --until 2026-11-29T09:00",
        ],
        func=cmd_replay,
    )
    p.add_argument(
        "--reason",
        action="append",
        choices=[r.value for r in Reason],
        help="only dead letters with this reason (repeatable; default: all)",
    )
    p.add_argument("--since", type=timestamp, help="only dead letters at or after this time")
    p.add_argument("--until", type=timestamp, help="only dead letters before this time")
    p.add_argument("--dry-run", action="store_true", help="count what would be sent, send nothing")
    add_broker_options(p)

    p = add_command(
        sub,
        "demo",
        help="a local broker, Redis and worker on the bundled Korean sample, with a live summary",
        examples=["moderator demo", "moderator demo --device cpu --batch-size 32"],
        func=cmd_demo,
    )
    p.add_argument("--timeout", type=at_least(1, float), default=600.0, help="give up after N seconds")
    add_model_options(p)
    add_batch_options(p, window=False)

    from topics.schema import SCHEMA_DIR

    p = add_command(
        sub,
        "schema",
        help="write the JSON Schema of every topic's records (inputs, verdicts, dead letters)",
        examples=["moderator schema", "moderator schema --out /tmp/schemas"],
        func=cmd_schema,
    )
    p.add_argument("--out", default=str(SCHEMA_DIR), help=f"directory (default {SCHEMA_DIR})")

    p = add_command(
        sub,
        "dashboard",
        help="the review dashboard: overview, flagged queue, decisions (web)",
        examples=[
            "moderator dashboard",
            "moderator dashboard --host 0.0.0.0 --port 8090 --db /data/dash.sqlite3",
        ],
        func=cmd_dashboard,
        log_level="info",
    )
    _dashboard_options(p)
    add_broker_options(p)
    g = p.add_argument_group("dashboard")
    g.add_argument("--redis-url", dest="redis_url", help="Redis URL where human decisions are written")
    g.add_argument("--policy", dest="policy_path", type=Path, help="policy JSON (thresholds shown per item)")
    g.add_argument("--app-id", dest="app_id", help="the workers' consumer group, for lag (default moderator)")
    g.add_argument("--host", dest="dashboard_host", help="bind address (default 127.0.0.1)")
    g.add_argument("--port", dest="dashboard_port", type=at_least(1), help="port (default 8090)")

    p = add_command(
        sub,
        "dashboard-user",
        help="add, list or remove dashboard accounts",
        examples=[
            "moderator dashboard-user add mina --role reviewer",
            'echo "$PASSWORD" | moderator dashboard-user add ci --role admin --password-stdin',
            "moderator dashboard-user list",
        ],
        func=cmd_dashboard_user,
    )
    _dashboard_options(p)
    p.add_argument("action", choices=["add", "list", "remove"])
    p.add_argument("name", nargs="?", help="account name (add, remove)")
    p.add_argument("--role", choices=["viewer", "reviewer", "admin"], default="viewer", help="default viewer")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    p.add_argument(
        "--replace", action="store_true", help="add: set a new password and role if the name exists"
    )

    p = add_command(
        sub,
        "export-reviews",
        help="write human decisions as training rows (UnSmile TSV, JSONL pairs)",
        examples=["moderator export-reviews --out reviews/"],
        func=cmd_export_reviews,
    )
    add_broker_options(p)
    p.add_argument("--out", required=True, help="output folder (comments.tsv, replies.jsonl)")
    return parser


def _known_code(exc: BaseException) -> ExitCode | None:
    for kind, code in known_user_errors().items():
        if isinstance(exc, kind):
            return code
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the single place where errors become exit codes (see ``moderator.exits``)."""
    command = "moderator"
    try:
        args = build_parser().parse_args(argv)
        command = f"moderator {args.command}"
        level = args.log_level or os.environ.get("MODERATOR_LOG_LEVEL") or args.default_log_level
        logging.basicConfig(
            level=getattr(logging, level.upper(), logging.INFO),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        return int(args.func(args))
    except UserError as exc:
        print(f"{exc.command or command}: {exc.line()}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        code = _known_code(exc)
        if code is None:
            raise  # a bug: keep the traceback
        text = str(exc)
        fix = "" if "Fix:" in text else " Fix: change the variable or the matching flag."
        print(f"{command}: {text}{fix}", file=sys.stderr)
        return int(code)
