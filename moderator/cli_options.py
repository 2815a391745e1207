"""How a ``moderator`` subcommand is declared: its parser, the option groups it picks, its settings.

Each subcommand lists only the options it reads (``add_*_options``, one group per concern), gets an
example in its help and ``--log-level`` (``add_command``), and builds its settings with
``settings_from`` (environment, then its flags, checked before any work). argparse's own errors become
``UsageError``s, so a bad flag prints one line like every other mistake (``moderator.exits``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from moderator.exits import UsageError
from moderator.settings import LOG_LEVELS, Settings


class Parser(argparse.ArgumentParser):
    """argparse whose errors are ``UsageError``s, so they print as one line like every other mistake."""

    def error(self, message: str) -> NoReturn:
        err = UsageError(message, f"see `{self.prog} --help`")
        err.command = self.prog
        raise err


def at_least(low: int | float, kind: Callable[[str], Any] = int) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


# ------------------------------------------------------------------------- option groups (one per concern)


def add_broker_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Kafka (overrides MODERATOR_BROKER)")
    g.add_argument("--broker", help="bootstrap URL, e.g. kafka://127.0.0.1:9092")


def add_redis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Redis (overrides MODERATOR_REDIS_URL)")
    g.add_argument("--redis-url", dest="redis_url", help="verdict cache URL ('' disables it)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models and policy (override MODERATOR_*)")
    g.add_argument("--classifier", dest="classifier_path", type=Path, help="hate-speech classifier model dir")
    g.add_argument("--judge", dest="judge_path", type=Path, help="safety judge model dir")
    g.add_argument("--policy", dest="policy_path", type=Path, help="policy JSON file")
    g.add_argument("--device", choices=["auto", "cuda", "cpu"], help="ONNX Runtime device")
    g.add_argument(
        "--max-batch-tokens",
        dest="max_batch_tokens",
        type=at_least(0),
        help="padded-token cap per model call (0: auto)",
    )


def add_batch_options(p: argparse.ArgumentParser, *, window: bool) -> None:
    g = p.add_argument_group("batching (overrides MODERATOR_BATCH_*)")
    g.add_argument("--batch-size", dest="batch_size", type=at_least(1), help="records per batch (default 64)")
    if window:
        g.add_argument(
            "--batch-window-ms",
            dest="batch_window_ms",
            type=at_least(0, float),
            help="how long a batch waits to fill (default 20)",
        )


def add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", dest="log_level", choices=LOG_LEVELS, help="default info")


_SETTING_FLAGS = (
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
    "dashboard_host",
    "dashboard_port",
    "dashboard_db",
    "api_host",
    "api_port",
)


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment, overridden by the flags this subcommand has, checked before any work starts."""
    overrides = {n: getattr(args, n, None) for n in _SETTING_FLAGS}
    return Settings.from_env().with_overrides(**overrides).check()


def timestamp(value: str) -> float:
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


def add_command(
    sub: Any,
    name: str,
    *,
    help: str,  # noqa: A002 - argparse's own name
    examples: Sequence[str],
    func: Callable[[argparse.Namespace], int],
    log_level: str = "warning",
) -> argparse.ArgumentParser:
    """One subcommand with its examples under its help; the caller adds only the options it reads.

    ``log_level`` is the default when neither --log-level nor MODERATOR_LOG_LEVEL says: a one-shot
    command prints its results, not INFO lines; a service logs at info.
    """
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.set_defaults(func=func, default_log_level=log_level)
    add_log_options(p)
    return p
