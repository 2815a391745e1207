"""The CLI as a new user meets it: every mistake is one line with a fix and its own exit code, never a
traceback; option values are checked; bugs still show their traceback.

Each case runs the real ``python -m moderator`` process (the offline cases fail before any model
loads, so they take about a second each).
"""

from __future__ import annotations

import argparse
import base64
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from moderator import cli
from moderator.exits import MEANINGS, ExitCode

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATOR_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "moderator", *args],
        input=stdin,
        capture_output=True,
        timeout=180,
        env=full_env,
    )


def one_line_error(proc: subprocess.CompletedProcess[bytes], code: ExitCode, command: str) -> str:
    """The process exited with ``code`` and said why in exactly one line, with a fix, no traceback."""
    err = proc.stderr.decode()
    assert proc.returncode == code, f"exit {proc.returncode}, expected {int(code)}:\n{err}"
    assert "Traceback" not in err and "Unclosed" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith(f"moderator {command}: "), lines[0]
    assert "Fix: " in lines[0], lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------ input files


def test_missing_input(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    line = one_line_error(
        run("score", "--kind", "comment", "--input", str(missing)), ExitCode.INPUT_UNREADABLE, "score"
    )
    assert str(missing) in line and "no such file" in line


def test_input_is_a_directory(tmp_path: Path) -> None:
    line = one_line_error(
        run("score", "--kind", "comment", "--input", str(tmp_path)), ExitCode.INPUT_UNREADABLE, "score"
    )
    assert "directory" in line


def test_dead_letter_path_in_a_missing_directory(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n')
    line = one_line_error(
        run("score", "--kind", "comment", "--input", str(src), "--dead-letter", "/nonexistent/x"),
        ExitCode.OUTPUT_UNWRITABLE,
        "score",
    )
    assert "/nonexistent" in line


def test_eval_on_a_file_without_labels(tmp_path: Path) -> None:
    src = tmp_path / "unlabelled.jsonl"
    src.write_text('{"id": "a", "text": "안녕"}\n')
    line = one_line_error(
        run("eval", "--kind", "comment", "--input", str(src)), ExitCode.INPUT_FORMAT, "eval"
    )
    assert "labels" in line and f"{src}:1" in line


def test_eval_on_a_csv(tmp_path: Path) -> None:
    src = tmp_path / "data.csv"
    src.write_text("text,label\n안녕,clean\n")
    line = one_line_error(run("eval", "--kind", "reply", "--input", str(src)), ExitCode.INPUT_FORMAT, "eval")
    assert "not JSON" in line and "JSONL" in line


def test_eval_split_that_does_not_fit_the_input(tmp_path: Path) -> None:
    src = tmp_path / "l.jsonl"
    src.write_text('{"text": "a", "labels": ["men"]}\n')
    split = tmp_path / "split.json"
    split.write_text('{"dev": [0, 5]}')
    one_line_error(
        run("eval", "--kind", "comment", "--input", str(src), "--split", str(split)), ExitCode.USAGE, "eval"
    )
    one_line_error(
        run("eval", "--kind", "comment", "--input", str(src), "--split", str(split), "--part", "test"),
        ExitCode.USAGE,
        "eval",
    )


# -------------------------------------------------------------------------------------------- no broker


@pytest.mark.parametrize("command", ["produce", "tail", "replay"])
def test_no_broker(command: str, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n')
    args = {"produce": ["--input", str(src)], "tail": ["--idle-timeout", "1"], "replay": ["--dry-run"]}[
        command
    ]
    broker = f"kafka://127.0.0.1:{closed_port()}"
    line = one_line_error(run(command, *args, "--broker", broker), ExitCode.BROKER, command)
    assert broker in line and "MODERATOR_BROKER" in line


def test_a_broker_url_with_a_wrong_scheme(tmp_path: Path) -> None:
    one_line_error(run("tail", "--broker", "http://127.0.0.1:9092"), ExitCode.USAGE, "tail")


# ---------------------------------------------------------------------------------------- option values


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--batch-size", "0"], {}),
        (["--batch-size", "many"], {}),
        (["--log-level", "loud"], {}),
        (["--max-batch-tokens", "-1"], {}),
        ([], {"MODERATOR_BATCH_SIZE": "0"}),
        ([], {"MODERATOR_LOG_LEVEL": "loud"}),
        ([], {"MODERATOR_DEVICE": "tpu"}),
    ],
    ids=["batch-0", "batch-word", "log-loud", "tokens-neg", "env-batch-0", "env-log-loud", "env-device"],
)
def test_option_values_are_checked_before_any_work(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n')
    line = one_line_error(
        run("score", "--kind", "comment", "--input", str(src), "--no-cache", *args, env=env),
        ExitCode.USAGE,
        "score",
    )
    named = args[0] if args else next(iter(env))
    assert named in line


def test_demo_has_no_options_it_would_ignore() -> None:
    parser = cli.build_parser()
    for flag in ("--broker", "--redis-url"):
        with pytest.raises(Exception, match="unrecognized arguments"):
            parser.parse_args(["demo", flag, "x"])


def test_demo_passes_device_and_batch_size_to_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from moderator.local import demo

    monkeypatch.delenv("MODERATOR_DEVICE", raising=False)
    argv = ["demo", "--device", "cpu", "--batch-size", "7", "--max-batch-tokens", "900"]
    env = demo.worker_overrides(cli.settings_from(cli.build_parser().parse_args(argv)))
    assert env["MODERATOR_DEVICE"] == "cpu"
    assert env["MODERATOR_BATCH_SIZE"] == "7"
    assert env["MODERATOR_MAX_BATCH_TOKENS"] == "900"
    assert env["MODERATOR_ID_REDIS_URL"] == "", "the demo never writes to a production id registry"


# ---------------------------------------------------------------------------------------- help, version


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    from importlib.metadata import version

    assert proc.stdout.decode().strip() == f"moderator {version('moderator')}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


#: What each command reads; a flag outside its list would be accepted and ignored.
OWN_FLAGS = {
    "worker": {"--broker", "--redis-url", "--batch-size", "--batch-window-ms", "--web-port", "--app-id"},
    "score": {"--kind", "--input", "--no-cache", "--dead-letter", "--redis-url", "--batch-size"},
    "eval": {"--kind", "--input", "--split", "--part", "--json", "--batch-size"},
    "produce": {"--kind", "--topic", "--input", "--broker"},
    "tail": {"--topic", "--latest", "--limit", "--idle-timeout", "--broker"},
    "demo": {"--timeout", "--device", "--batch-size"},
    "replay": {"--reason", "--since", "--until", "--dry-run", "--broker"},
    "schema": {"--out"},
}
#: Flags that make no sense for a command (it never talks to that service or never loads models).
FOREIGN_FLAGS = {
    "score": {"--broker", "--batch-window-ms", "--web-port"},
    "eval": {"--broker", "--redis-url", "--batch-window-ms"},
    "produce": {"--redis-url", "--classifier", "--device", "--batch-size"},
    "tail": {"--redis-url", "--classifier", "--device", "--batch-size"},
    "demo": {"--broker", "--redis-url", "--batch-window-ms"},
    "replay": {"--redis-url", "--classifier", "--device", "--batch-size"},
    "schema": {"--broker", "--redis-url", "--classifier"},
}


@pytest.mark.parametrize("command", sorted(OWN_FLAGS))
def test_each_command_lists_its_own_options_and_an_example(command: str) -> None:
    sub = _subparsers(cli.build_parser())[command]
    flags = {s for a in sub._actions for s in a.option_strings}
    assert OWN_FLAGS[command] <= flags
    assert not (FOREIGN_FLAGS.get(command, set()) & flags), FOREIGN_FLAGS[command] & flags
    help_text = sub.format_help()
    assert f"moderator {command}" in help_text.split("examples:", 1)[1]


def test_every_exit_code_is_documented_in_help_and_readme() -> None:
    top = cli.build_parser().format_help()
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert code in MEANINGS
        assert f"{int(code):>3}  {MEANINGS[code]}" in top
        assert f"| {int(code)} |" in readme, f"README's exit-code table lacks {int(code)}"
    assert len({int(c) for c in ExitCode}) == len(ExitCode), "codes are distinct"


# ------------------------------------------------------------------------------------------------ bugs


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(cli, "cmd_tail", broken)
    with pytest.raises(ValueError, match="invariant"):
        cli.main(["tail"])


# ------------------------------------------------------------------------------- score on real models


def _score(
    tmp_path: Path, body: bytes, classifier: Path, judge: Path, *extra: str
) -> subprocess.CompletedProcess[bytes]:
    src = tmp_path / "in.jsonl"
    src.write_bytes(body)
    models = ["--classifier", str(classifier), "--judge", str(judge), "--device", "cpu", "--no-cache"]
    return run("score", "--kind", "comment", "--input", str(src), *models, *extra)


def test_score_dead_letters_point_at_input_lines(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    body = b'{"id": "a", "text": "ok"}\n\n{"id": "b"}\nnot json\n{"id": "c", "text": "fine"}\n'
    dead = tmp_path / "dead.jsonl"
    proc = _score(tmp_path, body, tiny_classifier_dir, tiny_judge_dir, "--dead-letter", str(dead))
    assert proc.returncode == 0, proc.stderr.decode()
    records = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [(r["source"]["offset"], r["reason"]) for r in records] == [
        (3, "missing_field"),
        (4, "invalid_json"),
    ]
    assert records[0]["source"]["topic"] == str(tmp_path / "in.jsonl")
    verdicts = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [(v["id"], v["source"]["offset"]) for v in verdicts] == [("a", 1), ("c", 5)]


def test_score_on_the_terminal_shows_dead_letters_without_their_originals(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    huge = b'{"id": "big", "text": "' + b"x" * 70_000 + b'"}\n'
    proc = _score(tmp_path, b'{"id": "a", "text": "ok"}\n' + huge, tiny_classifier_dir, tiny_judge_dir)
    assert proc.returncode == 0, proc.stderr.decode()
    err = proc.stderr.decode()
    assert "dead letter: line 2: too_large" in err
    assert base64.b64encode(b"x" * 30).decode() not in err and len(proc.stderr) < 2_000


def test_score_fails_when_every_record_is_dead_lettered(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    proc = _score(tmp_path, b"id,text\n1,hello\n", tiny_classifier_dir, tiny_judge_dir)
    err = proc.stderr.decode()
    assert proc.returncode == ExitCode.NOTHING_SCORED, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("moderator score: every record was dead-lettered (2)") and "JSONL" in last
