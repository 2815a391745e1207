"""The committed JSON Schemas are the generated ones, and they accept what the pipeline really writes and
refuse what the worker dead-letters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from moderator.demo import DEMO_DATA
from topics import InputLimits, InvalidRecord, decode_comment
from topics.schema import SCHEMA_DIR, render_all


def _validator(stem: str) -> jsonschema.Draft202012Validator:
    schema = orjson.loads((SCHEMA_DIR / f"{stem}.schema.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_committed_schemas_are_up_to_date() -> None:
    rendered = render_all()
    committed = {p.name: p.read_bytes() for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == rendered, "stale topics/schemas/: run `moderator schema` and commit the files"


def test_the_schema_command_writes_the_same_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "moderator", "schema", "--out", str(tmp_path)], capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == render_all()


@pytest.mark.parametrize(("stem", "file"), [("comment", "comments.jsonl"), ("reply", "replies.jsonl")])
def test_the_bundled_inputs_validate(stem: str, file: str) -> None:
    validator = _validator(stem)
    lines = [line for line in (DEMO_DATA / file).read_bytes().splitlines() if line.strip()]
    assert lines
    for line in lines:
        validator.validate(orjson.loads(line))


@pytest.mark.parametrize(
    "record",
    [
        {"id": "a"},  # missing_field
        {"id": "a", "text": "x", "colour": "red"},  # unknown_field (strict)
        {"id": "a\u200bb", "text": "x"},  # invalid_id
        {"id": "", "text": "x"},  # empty id
        {"id": "a", "text": 5},  # wrong_type
        {"id": "a", "text": "x" * (InputLimits().max_text_chars + 1)},  # too_long
    ],
)
def test_what_the_worker_dead_letters_the_schema_refuses(record: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord):
        decode_comment(orjson.dumps(record), InputLimits())
    assert not _validator("comment").is_valid(record)


def test_records_the_pipeline_writes_validate(
    tmp_path: Path, tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    models = ["--classifier", str(tiny_classifier_dir), "--judge", str(tiny_judge_dir), "--device", "cpu"]
    seen: dict[str, int] = {"verdict": 0, "dead-letter": 0}
    for kind, body in (
        ("comment", b'{"id": "c1", "text": "\xec\x95\x88\xeb\x85\x95"}\n{"id": "c2"}\nnot json\n'),
        ("reply", b'{"id": "r1", "prompt": "q", "reply": "a"}\n{"id": "r2", "prompt": "q"}\n'),
    ):
        src, dead = tmp_path / f"{kind}.jsonl", tmp_path / f"{kind}.dead.jsonl"
        src.write_bytes(body)
        proc = subprocess.run(
            [sys.executable, "-m", "moderator", "score", "--kind", kind, "--input", str(src), "--no-cache"]
            + ["--dead-letter", str(dead), *models],
            capture_output=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        for stem, raw in (("verdict", proc.stdout), ("dead-letter", dead.read_bytes())):
            validator = _validator(stem)
            for line in raw.splitlines():
                validator.validate(orjson.loads(line))
                seen[stem] += 1
    assert seen == {"verdict": 2, "dead-letter": 3}
