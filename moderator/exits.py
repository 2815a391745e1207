"""Exit codes and the user errors behind them: the one place a command's failure becomes a process status.

A command raises a :class:`UserError` subclass for a mistake the user can fix (a missing file, a flag out
of range, a broker that is not running); ``moderator.cli.main`` prints it as one line, ``moderator
<command>: <what is wrong>. Fix: <what to do>``, and exits with the subclass's code. Errors that other
modules already raise for user mistakes are mapped in :data:`KNOWN_USER_ERRORS`, so they need no
wrapping. Anything else is a bug and keeps its traceback (exit 1). New subcommands plug in by raising
these classes (or a subclass with its own ``code``); README's "Exit codes" table lists the codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: an unexpected error, i.e. a bug: Python prints the traceback
    BUG = 1
    #: the command line or the configuration is wrong: a flag, a MODERATOR_* value, a model or policy file
    USAGE = 2
    #: the Kafka broker could not be reached (the worker exits with this after MODERATOR_BROKER_WAIT_S)
    BROKER = 3
    #: the worker's drain after SIGTERM outlived its bound (moderator.worker.SHUTDOWN_TIMEOUT_S)
    SHUTDOWN_TIMEOUT = 4
    #: an input file cannot be read: missing, a directory, no permission
    INPUT_UNREADABLE = 5
    #: an input file is not in the format the command reads (CSV for JSONL, no labels for eval)
    INPUT_FORMAT = 6
    #: an output path cannot be written (its directory is missing, no permission)
    OUTPUT_UNWRITABLE = 7
    #: ``score`` read records but every one was dead-lettered: nothing was scored
    NOTHING_SCORED = 8
    #: Ctrl-C (128 + SIGINT, the shell's convention)
    INTERRUPTED = 130


#: One line per code, for ``moderator --help`` and the README's table (a test keeps them in step).
MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.BUG: "unexpected error (a bug: the traceback is printed; please report it)",
    ExitCode.USAGE: "bad flag or MODERATOR_* value, or a model / policy file refused",
    ExitCode.BROKER: "the Kafka broker could not be reached",
    ExitCode.SHUTDOWN_TIMEOUT: "worker: draining after SIGTERM outlived its bound; uncommitted work is re-delivered",
    ExitCode.INPUT_UNREADABLE: "an input file is missing, a directory or not readable",
    ExitCode.INPUT_FORMAT: "an input file is not in the expected format (e.g. CSV for JSONL, no labels)",
    ExitCode.OUTPUT_UNWRITABLE: "an output path cannot be written",
    ExitCode.NOTHING_SCORED: "score: every record was dead-lettered",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class UserError(Exception):
    """A mistake the user can fix: ``message`` says what is wrong, ``fix`` what to do about it."""

    code: ExitCode = ExitCode.USAGE
    #: the command to name in the message when it is not the one that ran (argparse's subparser prog)
    command: str | None = None

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message.rstrip(". ")
        self.fix = fix.rstrip(". ")

    def line(self) -> str:
        return f"{self.message}. Fix: {self.fix}." if self.fix else f"{self.message}."


class UsageError(UserError):
    code = ExitCode.USAGE


class BrokerUnreachable(UserError):
    code = ExitCode.BROKER


class InputUnreadable(UserError):
    code = ExitCode.INPUT_UNREADABLE


class InputFormatError(UserError, ValueError):
    """Also a ``ValueError``, so library callers of the readers that raise it keep catching it."""

    code = ExitCode.INPUT_FORMAT


class OutputUnwritable(UserError):
    code = ExitCode.OUTPUT_UNWRITABLE


class NothingScored(UserError):
    code = ExitCode.NOTHING_SCORED


def known_user_errors() -> dict[type[BaseException], ExitCode]:
    """Errors raised elsewhere that always mean a user's mistake, with their codes (imported lazily:
    the runtime pulls in onnxruntime)."""
    from moderator.core.policy import PolicyError
    from moderator.runtime.errors import ModelLoadError, ProviderError
    from moderator.settings import SettingsError

    return {
        ModelLoadError: ExitCode.USAGE,
        ProviderError: ExitCode.USAGE,
        PolicyError: ExitCode.USAGE,
        SettingsError: ExitCode.USAGE,
    }


def check_readable(path: str, what: str = "--input") -> None:
    """Fail before any model loads when an input path cannot be read (``-`` is stdin)."""
    import os

    if path == "-":
        return
    if not os.path.exists(path):
        raise InputUnreadable(f"{what} {path}: no such file", "check the path, or pass - to read stdin")
    if os.path.isdir(path):
        raise InputUnreadable(f"{what} {path}: is a directory", "pass a file inside it")
    if not os.access(path, os.R_OK):
        raise InputUnreadable(f"{what} {path}: permission denied", "make it readable for this user")


def check_writable(path: str, what: str) -> None:
    """Fail before any work when an output file cannot be created or appended to."""
    import os

    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputUnwritable(f"{what} {path}: is a directory", "pass a file name inside it")
    if not os.path.isdir(parent):
        raise OutputUnwritable(f"{what} {path}: directory {parent} does not exist", "create it first")
    target = path if os.path.exists(path) else parent
    if not os.access(target, os.W_OK):
        raise OutputUnwritable(f"{what} {path}: permission denied", "choose a writable location")
