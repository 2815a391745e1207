"""The topic contract as JSON Schema (draft 2020-12), generated from the record dataclasses.

Producers and consumers in other languages validate against the files in ``topics/schemas/``
(``moderator schema`` writes them; a test fails when they are stale). The schemas come from the same
dataclasses, label keys and input limits the worker uses, so they cannot drift from the code: a new field
on a record is a new property here. What the dataclasses cannot say (the wire name of a field, the
enumerations, the input limits) is in the small tables below.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from topics.records import CommentIn, DeadLetter, ReplyIn, Verdict
from topics.validation import InputLimits, Reason

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

#: file stem -> (record class, topics it travels on (by TopicNames field), input record?)
RECORDS: dict[str, tuple[type[Any], tuple[str, ...], bool]] = {
    "comment": (CommentIn, ("comments",), True),
    "reply": (ReplyIn, ("replies",), True),
    "verdict": (Verdict, ("verdicts", "flagged"), False),
    "dead-letter": (DeadLetter, ("dead_letter",), False),
}

#: Fields the record class keeps under another name or encoding on the wire (``to_dict``).
_WIRE_NAMES: dict[tuple[type[Any], str], tuple[str, dict[str, Any]]] = {
    (DeadLetter, "original"): (
        "original_b64",
        {"type": "string", "contentEncoding": "base64", "description": "the input record's bytes"},
    ),
}

#: Fields whose wire form is always present, even where the dataclass has a default (``to_dict`` writes it).
_ALWAYS_WRITTEN: dict[type[Any], set[str]] = {
    Verdict: {"truncated", "revision", "supersedes"},
    DeadLetter: {"id", "kind", "source", "original", "ts"},
}

_ID_FORBIDDEN = "[\\u0000-\\u001f\\u007f-\\u009f\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\ufeff]"


def _type_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is type(None):
        return {"type": "null"}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is bytes:
        return {"type": "string"}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a) for a in args]
        simple = [o["type"] for o in options if set(o) == {"type"}]
        if len(simple) == len(options):
            return {"type": simple}
        return {"anyOf": options}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length pair, e.g. a char span
        items = [_type_schema(a) for a in args]
        return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    if hint is Any:
        return {}
    if dataclasses.is_dataclass(hint):
        return _object_schema(hint)  # type: ignore[arg-type]
    raise TypeError(f"no JSON Schema for {hint!r}")


def _object_schema(cls: type[Any], *, strict: bool = True) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    always = _ALWAYS_WRITTEN.get(cls, set())
    for f in dataclasses.fields(cls):
        if not f.init:  # derived (e.g. ``kind`` on inputs): not on the wire
            continue
        name, schema = _WIRE_NAMES.get((cls, f.name), (f.name, _type_schema(hints[f.name])))
        props[name] = schema
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if not has_default or f.name in always:
            required.append(name)
    return {"type": "object", "properties": props, "required": required, "additionalProperties": not strict}


def record_schema(stem: str, limits: InputLimits | None = None) -> dict[str, Any]:
    """The schema of one record kind; input limits default to the worker's defaults."""
    limits = limits or InputLimits()
    cls, topics, is_input = RECORDS[stem]
    doc = (cls.__doc__ or "").strip().splitlines()[0].replace("``", "")
    schema = _object_schema(cls, strict=is_input and limits.strict_fields)
    props = schema["properties"]
    if is_input:
        props["id"].update(minLength=1, maxLength=limits.max_id_chars)
        props["id"]["not"] = {"pattern": _ID_FORBIDDEN}  # control or invisible characters: invalid_id
        for name, prop in props.items():
            if name == "id" or prop.get("type") != "string":
                continue
            prop["maxLength"] = (
                limits.max_text_chars
                if name in ("text", "prompt", "reply")
                else (limits.max_short_field_chars)
            )
        props["meta"] = {
            "type": ["object", "null"],
            "description": f"free-form, at most {limits.max_meta_bytes} bytes",
        }
        doc += (
            f" Records over {limits.max_record_bytes} bytes are dead-lettered (too_large); with strict fields "
            "(MODERATOR_STRICT_FIELDS, the default) so are unknown top-level fields: put extras in meta."
        )
    if cls is DeadLetter:
        props["reason"] = {"enum": [r.value for r in Reason]}
    if not is_input:
        doc += " Consumers should ignore fields they do not know: new fields may be added."
    return {
        "$schema": DRAFT,
        "title": f"{stem} record",
        "description": f"{doc} Topics (default names): {', '.join(_default_topic(t) for t in topics)}.",
        **schema,
    }


def _default_topic(field_name: str) -> str:
    from topics.names import TopicNames

    return str(getattr(TopicNames(), field_name))


def render_all(limits: InputLimits | None = None) -> dict[str, bytes]:
    """File name -> bytes of every schema, as committed under ``topics/schemas/``."""
    import orjson

    out = {}
    for stem in RECORDS:
        out[f"{stem}.schema.json"] = (
            orjson.dumps(record_schema(stem, limits), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            + b"\n"
        )
    return out


def write_all(directory: Path = SCHEMA_DIR, limits: InputLimits | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in render_all(limits).items():
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    return written


__all__ = ["RECORDS", "SCHEMA_DIR", "record_schema", "render_all", "write_all"]
