"""Decode and validate input records before any work, with a reason code for every refusal.

Every limit is checked on the raw bytes or the parsed fields before a tokenizer or model sees them,
so a hostile record costs a parse at most.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

import orjson

from topics.records import CommentIn, ReplyIn
from topics.text import is_blank


class Reason(StrEnum):
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_TEXT = "empty_text"
    TOO_LONG = "too_long"
    TOO_DEEP = "too_deep"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_ID = "invalid_id"
    MODEL_ERROR = "model_error"


class InvalidRecord(ValueError):
    """A record that cannot be verdicted; ``reason`` is a stable code, ``detail`` says what to fix."""

    def __init__(self, reason: Reason, detail: str, record_id: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record_id = record_id


@dataclass(frozen=True, slots=True)
class InputLimits:
    """Size limits, enforced before any work. Defaults suit chat and comment traffic."""

    max_record_bytes: int = 64 * 1024
    max_text_chars: int = 8000
    max_id_chars: int = 256
    max_short_field_chars: int = 256
    max_meta_bytes: int = 8192
    max_meta_depth: int = 8
    strict_fields: bool = True


_DEFAULT_LIMITS = InputLimits()

_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_COMMENT_FIELDS = frozenset({"id", "text", "author", "channel", "ts", "meta"})
_REPLY_FIELDS = frozenset({"id", "prompt", "reply", "bot", "conversation", "ts", "meta"})
#: Ids the common way (printable ASCII, no space): valid by every rule of ``_record_id`` but the length.
_PLAIN_ID = re.compile(r"[!-~]+")


def _parse(raw: bytes | bytearray | memoryview, limits: InputLimits) -> dict[str, Any]:
    if len(raw) > limits.max_record_bytes:
        raise InvalidRecord(
            Reason.TOO_LARGE, f"record is {len(raw)} bytes; the limit is {limits.max_record_bytes}"
        )
    raw_bytes = raw if isinstance(raw, bytes) else bytes(raw)
    try:
        # orjson refuses invalid UTF-8 itself, so the separate decode runs only to name the reason
        data = orjson.loads(raw_bytes)
    except orjson.JSONDecodeError as exc:
        try:
            raw_bytes.decode("utf-8")
        except UnicodeDecodeError as utf8:
            raise InvalidRecord(Reason.INVALID_UTF8, f"not valid UTF-8 at byte {utf8.start}") from None
        raise InvalidRecord(Reason.INVALID_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecord(Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type(data).__name__}")
    return data


def _record_id(data: dict[str, Any], limits: InputLimits) -> str:
    if "id" not in data or data["id"] is None:
        raise InvalidRecord(Reason.MISSING_FIELD, "field 'id' is required")
    rid = data["id"]
    if not isinstance(rid, str):
        raise InvalidRecord(Reason.WRONG_TYPE, f"field 'id' must be a string, got {type(rid).__name__}")
    if not rid.strip():
        raise InvalidRecord(Reason.EMPTY_TEXT, "field 'id' is empty")
    if len(rid) > limits.max_id_chars:
        raise InvalidRecord(
            Reason.TOO_LONG, f"field 'id' has {len(rid)} chars; the limit is {limits.max_id_chars}"
        )
    if _ID_FORBIDDEN.search(rid):
        # ids are echoed into keys, logs and dashboards: no control or invisible format characters
        raise InvalidRecord(Reason.INVALID_ID, "field 'id' contains control or invisible characters")
    return rid


def _text(data: dict[str, Any], name: str, rid: str, limits: InputLimits, allow_empty: bool = False) -> str:
    if name not in data or data[name] is None:
        raise InvalidRecord(Reason.MISSING_FIELD, f"field {name!r} is required", rid)
    value = data[name]
    if not isinstance(value, str):
        raise InvalidRecord(
            Reason.WRONG_TYPE, f"field {name!r} must be a string, got {type(value).__name__}", rid
        )
    if len(value) > limits.max_text_chars:
        raise InvalidRecord(
            Reason.TOO_LONG,
            f"field {name!r} has {len(value)} chars; the limit is {limits.max_text_chars}",
            rid,
        )
    if not allow_empty and is_blank(value):
        raise InvalidRecord(Reason.EMPTY_TEXT, f"field {name!r} is empty after normalisation", rid)
    return value


def _optional_str(data: dict[str, Any], name: str, rid: str, limits: InputLimits) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecord(
            Reason.WRONG_TYPE, f"field {name!r} must be a string, got {type(value).__name__}", rid
        )
    if len(value) > limits.max_short_field_chars:
        raise InvalidRecord(
            Reason.TOO_LONG,
            f"field {name!r} has {len(value)} chars; the limit is {limits.max_short_field_chars}",
            rid,
        )
    return value


def _ts(data: dict[str, Any], rid: str, limits: InputLimits) -> float | str | None:
    value = data.get("ts")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRecord(
            Reason.WRONG_TYPE, f"field 'ts' must be a number or a string, got {type(value).__name__}", rid
        )
    if isinstance(value, str) and len(value) > limits.max_short_field_chars:
        raise InvalidRecord(Reason.TOO_LONG, "field 'ts' is too long", rid)
    return value


def _depth(value: Any) -> int:
    """Nesting depth without recursion, so a hostile document cannot exhaust the stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in node)
    return deepest


def _meta(data: dict[str, Any], rid: str, limits: InputLimits) -> dict[str, Any] | None:
    value = data.get("meta")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRecord(
            Reason.WRONG_TYPE, f"field 'meta' must be an object, got {type(value).__name__}", rid
        )
    depth = _depth(value)
    if depth > limits.max_meta_depth:
        raise InvalidRecord(
            Reason.TOO_DEEP, f"field 'meta' nests {depth} levels; the limit is {limits.max_meta_depth}", rid
        )
    size = len(orjson.dumps(value))
    if size > limits.max_meta_bytes:
        raise InvalidRecord(
            Reason.TOO_LARGE, f"field 'meta' is {size} bytes; the limit is {limits.max_meta_bytes}", rid
        )
    return value


def _check_fields(data: dict[str, Any], allowed: frozenset[str], rid: str, limits: InputLimits) -> None:
    if not limits.strict_fields or allowed.issuperset(data):  # the common case, with no set built
        return
    unknown = sorted(set(data) - allowed)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise InvalidRecord(
            Reason.UNKNOWN_FIELD,
            f"unknown field(s) {shown}; allowed: {', '.join(sorted(allowed))} (put extras in 'meta')",
            rid,
        )


def _plain_short(value: Any, limits: InputLimits) -> bool:
    """An optional short field the common way: absent, or a string within its limit."""
    return value is None or (type(value) is str and len(value) <= limits.max_short_field_chars)


def _plain_ts(value: Any, limits: InputLimits) -> bool:
    """``ts`` the common way: absent, a number (bools are ints: not accepted here), a short string."""
    kind = type(value)
    return (
        value is None
        or kind is float
        or kind is int
        or (kind is str and len(value) <= limits.max_short_field_chars)
    )


def _plain_text(value: Any, limits: InputLimits) -> TypeGuard[str]:
    """A text field that passes ``_text`` (allow_empty=False), decided without a regex for nearly every
    text: it starts with a printable ASCII character or a Hangul syllable, so it is not blank."""
    if type(value) is not str or len(value) > limits.max_text_chars:
        return False
    first = value[:1]
    if "!" <= first <= "~" or "\uac00" <= first <= "\ud7a3":
        return True
    return bool(value) and not is_blank(value)


def _plain_id(value: Any, limits: InputLimits) -> TypeGuard[str]:
    """An id that passes ``_record_id``: printable ASCII without spaces, within the limit."""
    return type(value) is str and len(value) <= limits.max_id_chars and _PLAIN_ID.fullmatch(value) is not None


def decode_comment(raw: bytes | bytearray | memoryview, limits: InputLimits | None = None) -> CommentIn:
    limits = limits or _DEFAULT_LIMITS
    data = _parse(raw, limits)
    get = data.get
    # The common record (plain id and text, short optional fields, no meta, known fields only) in a few
    # checks that imply every rule below; anything else takes the field-by-field path, which names what
    # is wrong. The record built is the same either way (tests/topics/test_validation.py).
    rid, text, author, channel, ts = get("id"), get("text"), get("author"), get("channel"), get("ts")
    if (
        _plain_id(rid, limits)
        and _plain_text(text, limits)
        and _plain_short(author, limits)
        and _plain_short(channel, limits)
        and _plain_ts(ts, limits)
        and get("meta") is None
        and (not limits.strict_fields or _COMMENT_FIELDS.issuperset(data))
    ):
        return CommentIn(rid, text, author, channel, ts, None)
    return _decode_comment_fields(data, limits)


def _decode_comment_fields(data: dict[str, Any], limits: InputLimits) -> CommentIn:
    rid = _record_id(data, limits)
    _check_fields(data, _COMMENT_FIELDS, rid, limits)
    return CommentIn(
        id=rid,
        text=_text(data, "text", rid, limits),
        author=_optional_str(data, "author", rid, limits),
        channel=_optional_str(data, "channel", rid, limits),
        ts=_ts(data, rid, limits),
        meta=_meta(data, rid, limits),
    )


def decode_reply(raw: bytes | bytearray | memoryview, limits: InputLimits | None = None) -> ReplyIn:
    limits = limits or _DEFAULT_LIMITS
    data = _parse(raw, limits)
    get = data.get
    # the common record in a few checks, as in decode_comment; the prompt may be empty
    rid, prompt, reply, bot, conversation = (
        get("id"),
        get("prompt"),
        get("reply"),
        get("bot"),
        get("conversation"),
    )
    ts = get("ts")
    if (
        _plain_id(rid, limits)
        and type(prompt) is str
        and len(prompt) <= limits.max_text_chars
        and _plain_text(reply, limits)
        and _plain_short(bot, limits)
        and _plain_short(conversation, limits)
        and _plain_ts(ts, limits)
        and get("meta") is None
        and (not limits.strict_fields or _REPLY_FIELDS.issuperset(data))
    ):
        return ReplyIn(rid, prompt, reply, bot, conversation, ts, None)
    return _decode_reply_fields(data, limits)


def _decode_reply_fields(data: dict[str, Any], limits: InputLimits) -> ReplyIn:
    rid = _record_id(data, limits)
    _check_fields(data, _REPLY_FIELDS, rid, limits)
    return ReplyIn(
        id=rid,
        prompt=_text(data, "prompt", rid, limits, allow_empty=True),
        reply=_text(data, "reply", rid, limits),
        bot=_optional_str(data, "bot", rid, limits),
        conversation=_optional_str(data, "conversation", rid, limits),
        ts=_ts(data, rid, limits),
        meta=_meta(data, rid, limits),
    )
