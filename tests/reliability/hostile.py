"""A deterministic corpus of malformed records (>= 1,000) and Hypothesis strategies for more.

Every record here must be refused by the contract's decoder before any work; the fault test checks
that with :func:`topics.decode_comment` and then that the worker dead-letters each one with the same
reason. ``MARKER`` is planted in many payloads so the test can grep the worker's log for raw input.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import strategies as st

MARKER = "HOSTILE-PAYLOAD-7f3a"

_JSON_SCALARS: list[Any] = [0, 1, -1, 3.5, 1e300, True, False, None, "", "x", [], {}, [1, 2], {"a": 1}]


def _invalid_utf8(rng: random.Random, n: int) -> list[bytes]:
    bad = [
        b"\xff",
        b"\xfe\xff",
        b"\xc0\xaf",  # overlong '/'
        b"\xe0\x80\xaf",  # overlong
        b"\xed\xa0\x80",  # UTF-16 surrogate encoded in UTF-8
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\x80",  # lone continuation byte
        b"\xe2\x82",  # truncated sequence
        b"\xc3\x28",
        b"\xf0\x28\x8c\xbc",
    ]
    out = []
    for i in range(n):
        seq = bad[i % len(bad)]
        where = i % 3
        if where == 0:
            out.append(b'{"id": "u%d", "text": "' % i + MARKER.encode() + seq + b'"}')
        elif where == 1:
            out.append(seq + b'{"id": "u%d", "text": "ok"}' % i)
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + seq)
    return out


def _invalid_json(n: int) -> list[bytes]:
    shapes = [
        b'{"id": "j%d", "text": "' + MARKER.encode() + b'"',  # truncated
        b'{"id": "j%d", "text": "a",}',  # trailing comma
        b"{'id': 'j%d', 'text': 'single quotes'}",
        b'{id: "j%d", text: "unquoted keys"}',
        b'{"id": "j%d", "text": NaN}',
        b'{"id": "j%d", "text": "a" /* comment */}',
        b'{"id": "j%d" "text": "missing colon"}',
        b'{"id": "j%d", "text": "raw \x01 control"}',
        b'{"id": "j%d", "text": "raw\nnewline ' + MARKER.encode() + b'"}',
        b'{"id": "j%d", "text": "bad escape \\x41"}',
        b'{"id": "j%d", "text": "lone surrogate \\ud800"}',
        b'\xef\xbb\xbf{"id": "j%d", "text": "BOM"}',
        b'{"id": "j%d", "text": "two"} {"id": "x", "text": "objects"}',
        b"%d",
    ]
    fixed = [b"", b" ", b"\n", b"\x00", b"{", b"}", b"[", b'"', b"nul", b"tru", b"{}}", b"[[[[", b"\x00" * 64]
    out = [shapes[i % len(shapes)].replace(b"%d", str(i).encode()) for i in range(n - len(fixed))]
    return out + fixed


def _not_an_object(n: int) -> list[bytes]:
    values: list[Any] = [[1, 2, 3], "a string", 42, 3.25, True, False, None, [], [{"id": "a", "text": "b"}]]
    return [orjson.dumps(values[i % len(values)] if i % 2 else [MARKER, i]) for i in range(n)]


def _wrong_types(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        bad = _JSON_SCALARS[i % len(_JSON_SCALARS)]
        field = i % 6
        if field == 0 and not isinstance(bad, str) and bad is not None:
            rec: dict[str, Any] = {"id": bad, "text": MARKER}
        elif field == 1 and not isinstance(bad, str) and bad is not None:
            rec = {"id": f"w{i}", "text": bad}
        elif field == 2 and not isinstance(bad, str) and bad is not None:
            rec = {"id": f"w{i}", "text": MARKER, "author": bad}
        elif field == 3 and isinstance(bad, bool | list | dict):
            rec = {"id": f"w{i}", "text": MARKER, "ts": bad}
        elif field == 4 and bad is not None and not isinstance(bad, dict):
            rec = {"id": f"w{i}", "text": MARKER, "meta": bad}
        else:
            rec = {"id": [f"w{i}"], "text": MARKER}
        out.append(orjson.dumps(rec))
    return out


def _nulls(n: int) -> list[bytes]:
    shapes: list[dict[str, Any]] = [
        {"id": None, "text": MARKER},
        {"id": "n", "text": None},
        {"id": None, "text": None},
        {"text": MARKER},
        {"id": "n"},
        {},
    ]
    out = []
    for i in range(n):
        rec = dict(shapes[i % len(shapes)])
        if rec.get("id") == "n":
            rec["id"] = f"n{i}"
        out.append(orjson.dumps(rec))
    return out


def _deeply_nested(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        depth = 9 + (i * 37) % 900
        m = b'"' + MARKER.encode() + b'"'
        if i % 3 == 0:  # deep 'meta': too_deep (or invalid_json past the parser's own limit)
            meta = b'{"k": ' * depth + m + b"}" * depth
            out.append(b'{"id": "d%d", "text": "ok", "meta": ' % i + meta + b"}")
        elif i % 3 == 1:  # deep array where the text should be: wrong_type (or invalid_json)
            out.append(b'{"id": "d%d", "text": ' % i + b"[" * depth + m + b"]" * depth + b"}")
        else:  # deeper than any JSON parser should follow: invalid_json (no recursion blow-up)
            d = 2000 + i * 10
            out.append(b'{"id": "d%d", "text": ' % i + b"[" * d + b"]" * d + b"}")
    return out


def _huge(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            rec: dict[str, Any] = {"id": f"h{i}", "text": MARKER + "가" * (8001 + i * 97)}
        elif kind == 1:
            rec = {"id": "i" * (257 + i), "text": "ok"}
        elif kind == 2:
            rec = {"id": f"h{i}", "text": "ok", "author": "a" * (257 + i)}
        elif kind == 3:
            rec = {"id": f"h{i}", "text": "ok", "meta": {"blob": MARKER * (700 + i)}}
        elif kind == 4:
            rec = {"id": f"h{i}", "text": "ok", "channel": "c" * (300 + i)}
        else:  # bigger than the whole-record limit: refused before parsing
            rec = {"id": f"h{i}", "text": "ok", "pad": "x" * (70_000 + i * 1000)}
        out.append(orjson.dumps(rec))
    # a few records far above the 64 KiB limit (the broker takes them; the worker must not choke)
    out += [orjson.dumps({"id": f"huge{k}", "text": MARKER * (k * 1000)}) for k in (10, 20, 45)]
    return out


def _control_and_empty(n: int) -> list[bytes]:
    texts = [
        "",
        " ",
        "\t\n",
        "\u200b\u200b",
        "\x00\x01\x02",
        "\u202e\u202d",
        "\ufeff",
        "\x7f\x85",
        "\u2028\u2029",
    ]
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(orjson.dumps({"id": " \t ", "text": MARKER}))
        else:
            out.append(orjson.dumps({"id": f"e{i}", "text": texts[i % len(texts)]}))
    return out


def _unknown_fields(n: int) -> list[bytes]:
    return [
        orjson.dumps({"id": f"f{i}", "text": MARKER, ["extra", "__proto__", "\x00", "TEXT", "Id"][i % 5]: i})
        for i in range(n)
    ]


def corpus(seed: int = 20_240_501) -> list[tuple[bytes, str]]:
    """(raw record, category) for >= 1,000 malformed comment records; same output for the same seed."""
    rng = random.Random(seed)
    groups = {
        "invalid_utf8": _invalid_utf8(rng, 150),
        "invalid_json": _invalid_json(170),
        "not_an_object": _not_an_object(60),
        "wrong_type": _wrong_types(180),
        "null": _nulls(90),
        "deeply_nested": _deeply_nested(90),
        "huge": _huge(120),
        "control_or_empty": _control_and_empty(120),
        "unknown_field": _unknown_fields(60),
    }
    return [(raw, category) for category, records in groups.items() for raw in records]


# ------------------------------------------------------------------------------------ hypothesis


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_not_string = json_values.filter(lambda v: not isinstance(v, str) and v is not None)
_blank = st.text(alphabet=" \t\n\r\x00\x01\x1f\x7f\u200b\u200c\u200d\u2028\ufeff", max_size=12)

#: comment-shaped records that are wrong in one way or another
malformed_comments = st.one_of(
    st.binary(max_size=200),  # arbitrary bytes (the test keeps only those the decoder refuses)
    st.builds(lambda v: orjson.dumps(v), json_values.filter(lambda v: not isinstance(v, dict))),
    st.builds(lambda i, t: orjson.dumps({"id": i, "text": t}), _not_string, st.text(max_size=30)),
    st.builds(
        lambda i, t: orjson.dumps({"id": i, "text": t}),
        st.text(min_size=1, max_size=10).filter(str.strip),
        _not_string,
    ),
    st.builds(
        lambda i, t: orjson.dumps({"id": i, "text": t}),
        st.text(min_size=1, max_size=10).filter(str.strip),
        _blank,
    ),
    st.builds(
        lambda i, k, v: orjson.dumps({"id": i, "text": "ok", k: v}),
        st.text(min_size=1, max_size=10).filter(str.strip),
        st.text(min_size=1, max_size=12).filter(
            lambda k: k not in {"id", "text", "author", "channel", "ts", "meta"}
        ),
        json_values,
    ),
    st.builds(
        lambda b, cut: b[:cut],
        st.builds(lambda t: orjson.dumps({"id": "t", "text": t}), st.text(min_size=1, max_size=40)),
        st.integers(1, 12),
    ),
)
