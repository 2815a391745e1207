"""The committed JSON Schemas are the generated ones; they accept the bundled inputs and refuse what the
worker dead-letters (unit layer: no models, no processes; tests/moderator/test_cli_schema.py checks the
records a real pipeline writes)."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
import pytest

from moderator.local.demo import DEMO_DATA
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
