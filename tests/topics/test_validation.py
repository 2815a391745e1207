import json
import re
import unicodedata

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topics import InputLimits, InvalidRecord, Reason, decode_comment, decode_reply, normalize_text
from topics.text import _CONTROL


def raw(obj: object) -> bytes:
    return orjson.dumps(obj)


def reason_of(data: bytes, decode=decode_comment, limits: InputLimits | None = None) -> Reason:
    with pytest.raises(InvalidRecord) as info:
        decode(data, limits)
    return info.value.reason


def test_valid_comment_keeps_original_text_and_optional_fields() -> None:
    rec = decode_comment(
        raw({"id": "c1", "text": "  안녕\u200b하세요  ", "channel": "news", "ts": 1.5, "meta": {"a": [1]}})
    )
    assert rec.id == "c1"
    assert rec.text == "  안녕\u200b하세요  "
    assert rec.channel == "news" and rec.ts == 1.5 and rec.meta == {"a": [1]}
    assert rec.kind == "comment"


def test_valid_reply_allows_empty_prompt_but_not_empty_reply() -> None:
    rec = decode_reply(raw({"id": "r1", "prompt": "", "reply": "네, 알겠습니다.", "bot": "kid-bot"}))
    assert rec.reply == "네, 알겠습니다." and rec.prompt == "" and rec.kind == "reply"
    assert reason_of(raw({"id": "r1", "prompt": "hi", "reply": "   "}), decode_reply) is Reason.EMPTY_TEXT


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe{}", Reason.INVALID_UTF8),
        (b'{"id": "x", "text": ', Reason.INVALID_JSON),
        (b"[1, 2]", Reason.NOT_AN_OBJECT),
        (b'"just a string"', Reason.NOT_AN_OBJECT),
        (raw({"text": "hi"}), Reason.MISSING_FIELD),
        (raw({"id": None, "text": "hi"}), Reason.MISSING_FIELD),
        (raw({"id": 7, "text": "hi"}), Reason.WRONG_TYPE),
        (raw({"id": "x"}), Reason.MISSING_FIELD),
        (raw({"id": "x", "text": 5}), Reason.WRONG_TYPE),
        (raw({"id": "x", "text": ["a"]}), Reason.WRONG_TYPE),
        (raw({"id": "x", "text": ""}), Reason.EMPTY_TEXT),
        (raw({"id": "x", "text": "\x00\x01\u200b "}), Reason.EMPTY_TEXT),
        (raw({"id": "x", "text": "a" * 9000}), Reason.TOO_LONG),
        (raw({"id": "x" * 300, "text": "a"}), Reason.TOO_LONG),
        (raw({"id": "x", "text": "a", "extra": 1}), Reason.UNKNOWN_FIELD),
        (raw({"id": "x\ny", "text": "a"}), Reason.INVALID_ID),
        (raw({"id": "a\u202eb", "text": "a"}), Reason.INVALID_ID),
        (raw({"id": "x", "text": "a", "ts": True}), Reason.WRONG_TYPE),
        (raw({"id": "x", "text": "a", "meta": []}), Reason.WRONG_TYPE),
        (raw({"id": "x", "text": "a", "author": 3}), Reason.WRONG_TYPE),
        (b"[" * 5000 + b"]" * 5000, Reason.INVALID_JSON),
    ],
)
def test_bad_comments_get_a_reason(data: bytes, reason: Reason) -> None:
    assert reason_of(data) is reason


def test_deeply_nested_meta_and_oversized_records_are_refused_before_work() -> None:
    nested: dict = {}
    node = nested
    for _ in range(20):
        node["k"] = {}
        node = node["k"]
    assert reason_of(raw({"id": "x", "text": "a", "meta": nested})) is Reason.TOO_DEEP
    assert reason_of(b" " * 70_000) is Reason.TOO_LARGE


def test_unknown_fields_pass_when_not_strict() -> None:
    rec = decode_comment(raw({"id": "x", "text": "a", "extra": 1}), InputLimits(strict_fields=False))
    assert rec.text == "a"


def test_invalid_record_carries_the_id_when_known() -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_comment(raw({"id": "abc", "text": 1}))
    assert info.value.record_id == "abc"
    assert "text" in info.value.detail


def test_normalize_text_nfc_controls_and_spaces() -> None:
    decomposed = "\u1100\u1161"  # 가 as conjoining jamo
    assert normalize_text(decomposed) == "가"
    assert normalize_text(" 안녕 \t\n 하세요\x07 ") == "안녕 하세요"
    assert normalize_text("\ufeffㅅㅂ") == "ㅅㅂ"


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from([*(chr(c) for c in range(0x3001) if chr(c).isspace()), "a", "가", "\x07"])
    )
)
def test_normalize_text_collapses_white_space_exactly_as_the_regex_did(text: str) -> None:
    # normalize_text joins str.split(); it was re.sub(r"\s+", " ", ...).strip(): same characters, same result
    expected = re.sub(r"\s+", " ", _CONTROL.sub("", unicodedata.normalize("NFC", text))).strip()
    assert normalize_text(text) == expected


@settings(max_examples=800, deadline=None)
@given(
    st.one_of(
        st.text(
            alphabet=st.sampled_from(
                ["a", " ", "가", "\u1100", "\u1161", "\u11a8", "e", "\u0301", "\t", "\u200b", "\u3000"]
            )
        ),
        st.text(),
    )
)
def test_normalize_text_fast_path_equals_the_reference(text: str) -> None:
    # the printable fast path must give what NFC, the control-character regex and the fold give
    expected = " ".join(_CONTROL.sub("", unicodedata.normalize("NFC", text)).split())
    assert normalize_text(text) == expected


def test_what_the_printable_fast_path_assumes_holds_for_every_code_point() -> None:
    import sys

    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char.isprintable():
            assert not _CONTROL.match(char), hex(code)
            assert char == " " or not char.isspace(), hex(code)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        decode_comment(data)
        decode_reply(data)
    except InvalidRecord as exc:
        assert isinstance(exc.reason, Reason)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "text", "prompt", "reply", "ts", "meta", "author", "x"]), json_values
    )
)
def test_arbitrary_json_objects_either_decode_or_get_a_reason(obj: dict) -> None:
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    for decode in (decode_comment, decode_reply):
        try:
            rec = decode(data)
        except InvalidRecord as exc:
            assert isinstance(exc.reason, Reason) and exc.detail
        else:
            assert isinstance(rec.id, str) and rec.id


# the fast path of decode_comment/decode_reply must build exactly what the field-by-field path builds
_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.sampled_from("a!~ 가힣ㄱ\u1100\u200b\x00\x7f\t\n\u3000é"), max_size=12),
    st.text(max_size=12),
    st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2),
    st.lists(st.integers(-9, 9), max_size=2),
)
_SMALL = InputLimits(max_text_chars=10, max_id_chars=6, max_short_field_chars=5)


def _outcome(decode, data: bytes, limits: InputLimits) -> object:
    try:
        return decode(data, limits)
    except InvalidRecord as exc:
        return (exc.reason, exc.detail, exc.record_id)


def _field_by_field(slow, data: bytes, limits: InputLimits) -> object:
    from topics.validation import _parse

    return _outcome(lambda raw_, lim: slow(_parse(raw_, lim), lim), data, limits)


def _shaped(base: dict, fields: tuple[str, ...]) -> st.SearchStrategy[dict]:
    """A valid record of one kind with at most one field dropped or set to an arbitrary value, so both
    paths are exercised (about half of these take the fast one)."""
    texts = st.text(alphabet=st.sampled_from("a!가ㄱ \u200b\x00\t"), max_size=12)
    change = st.one_of(st.none(), st.tuples(st.sampled_from(fields), st.one_of(texts, _FIELD_VALUES)))

    def apply(picked: tuple[str, object] | None, drop: bool) -> dict:
        record = dict(base)
        if picked is not None:
            name, value = picked
            if drop:
                record.pop(name, None)
            else:
                record[name] = value
        return record

    return st.builds(apply, change, st.booleans())


_COMMENTS = _shaped(
    {"id": "c-1", "text": "안녕하세요", "author": "u1", "channel": "news", "ts": 1.5},
    ("id", "text", "author", "channel", "ts", "meta"),
)
_REPLIES = _shaped(
    {"id": "r-1", "prompt": "", "reply": "네", "bot": "kid", "conversation": "t1", "ts": "2026"},
    ("id", "prompt", "reply", "bot", "conversation", "ts", "meta"),
)
_LIMITS = st.sampled_from([InputLimits(), _SMALL, InputLimits(strict_fields=False)])


@settings(max_examples=400, deadline=None)
@given(fields=_COMMENTS, limits=_LIMITS)
def test_comments_decode_on_the_fast_path_exactly_as_field_by_field(
    fields: dict, limits: InputLimits
) -> None:
    from topics.validation import _decode_comment_fields

    data = raw(fields)
    assert _outcome(decode_comment, data, limits) == _field_by_field(_decode_comment_fields, data, limits)


@settings(max_examples=400, deadline=None)
@given(fields=_REPLIES, limits=_LIMITS)
def test_replies_decode_on_the_fast_path_exactly_as_field_by_field(fields: dict, limits: InputLimits) -> None:
    from topics.validation import _decode_reply_fields

    data = raw(fields)
    assert _outcome(decode_reply, data, limits) == _field_by_field(_decode_reply_fields, data, limits)


@pytest.mark.parametrize(
    "record",
    [
        {"id": "c-1", "text": "안녕하세요", "author": "u1", "channel": "news", "ts": 1.5},
        {"id": "c-1", "text": "!?", "ts": "2026-12-01"},
        {"id": "c 1", "text": "ok"},  # an id with a space: valid, by the field-by-field path
        {"id": "c-1", "text": " \u200b\t"},  # blank after normalisation
        {"id": "c-1", "text": "\u200bx"},  # starts invisible, not blank
        {"id": "c-1", "text": "hi", "ts": True},
        {"id": "c-1", "text": "hi", "meta": {"a": 1}},
        {"id": "c-1\u200b", "text": "hi"},
        {"id": "c-1", "text": "hi", "extra": 1},
    ],
)
def test_fast_path_edge_cases_match(record: dict) -> None:
    from topics.validation import _decode_comment_fields

    data = raw(record)
    assert _outcome(decode_comment, data, InputLimits()) == _field_by_field(
        _decode_comment_fields, data, InputLimits()
    )
