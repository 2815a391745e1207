"""The typed verdict core: what the models decided for one content, before policy and per-record fields.

It flows from the models through the verdict cache into every verdict. Its stored form carries
``CORE_SCHEMA``, a hash of its field names and the label set, and the cache keys include it too: a
renamed, added or reordered field (or a new label) changes the schema, so entries written by older
code are never read as this shape (a counted miss), and a value of another shape is refused, never
half-read with defaults.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import orjson

from topics import LABEL_KEYS
from topics.labels import SAFETY_KEYS

_SCORE_DIGITS = 6


@dataclass(slots=True)
class VerdictCore:
    """``scores[j]``: P(``LABEL_KEYS[j]``), then P(``SAFETY_KEYS[j]``) when the model scores them (the
    multitask model: 17 scores, else 10); ``unsafe``: the judge's P(unsafe) (replies only);
    ``language``: ISO 639-1 tag of the text; ``spans``: (label or ``unsafe``, start, end) of the window
    that decided each score of a text read in several windows (empty for a one-window text).

    Never changed once built (the cache, the decision memo and every repeat's verdict share one), but
    not frozen: one is built per scored text, and a frozen dataclass's ``__init__`` costs ~3× a plain
    one's. Not hashable: look cores up by their cache key.
    """

    scores: tuple[float, ...]
    unsafe: float | None
    truncated: bool
    language: str | None = None
    spans: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def of(
        cls,
        scores: Any,
        unsafe: float | None,
        truncated: bool,
        *,
        language: str | None = None,
        spans: Mapping[str, tuple[int, int]] | None = None,
    ) -> VerdictCore:
        """Rounded to 6 digits so a cached core and a fresh one serialise identically."""
        return cls(
            scores=tuple(round(float(p), _SCORE_DIGITS) for p in scores),
            unsafe=None if unsafe is None else round(float(unsafe), _SCORE_DIGITS),
            truncated=bool(truncated),
            language=language,
            spans=VerdictCore.span_tuples(spans) if spans else (),
        )

    @staticmethod
    def span_tuples(spans: Mapping[str, tuple[int, int]]) -> tuple[tuple[str, int, int], ...]:
        """``spans`` from a label → (start, end) map: sorted by label, plain ints."""
        return tuple((str(label), int(a), int(b)) for label, (a, b) in sorted(spans.items()))

    @staticmethod
    def rounded_rows(probs: Any) -> list[list[float]]:
        """A batch of score rows rounded like ``of`` in one numpy call (``of`` rounds score by score).

        Each value is the double nearest to a 6-digit decimal, as with ``round``, so it serialises as
        that decimal and a cached core reads back equal to the fresh one.
        """
        rows: list[list[float]] = np.round(np.asarray(probs, dtype=np.float64), _SCORE_DIGITS).tolist()
        return rows

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": CORE_SCHEMA,
                "scores": self.scores,
                "unsafe": self.unsafe,
                "truncated": self.truncated,
                "language": self.language,
                "spans": self.spans,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> VerdictCore:
        """Raises ``CoreSchemaError`` for anything but this exact shape and schema."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CoreSchemaError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("v") != CORE_SCHEMA:
            raise CoreSchemaError(
                f"schema {data.get('v') if isinstance(data, dict) else None!r} != {CORE_SCHEMA}"
            )
        if set(data) != {"v", *_FIELD_NAMES}:
            raise CoreSchemaError(f"fields {sorted(data)} do not match {sorted(_FIELD_NAMES)}")
        scores, unsafe, truncated = data["scores"], data["unsafe"], data["truncated"]
        language, spans = data["language"], data["spans"]
        if language is not None and not isinstance(language, str):
            raise CoreSchemaError("language must be a string or null")
        if not isinstance(spans, list) or not all(
            isinstance(s, list)
            and len(s) == 3
            and isinstance(s[0], str)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in s[1:])
            for s in spans
        ):
            raise CoreSchemaError("spans must be [label, start, end] triples")
        if not isinstance(scores, list) or len(scores) not in _SCORE_LENGTHS:
            raise CoreSchemaError(f"scores must be {' or '.join(map(str, _SCORE_LENGTHS))} numbers")
        if not all(isinstance(p, int | float) for p in scores) or not isinstance(truncated, bool):
            raise CoreSchemaError("scores must be numbers and truncated a bool")
        if unsafe is not None and not isinstance(unsafe, int | float):
            raise CoreSchemaError("unsafe must be a number or null")
        return cls(
            tuple(float(p) for p in scores),
            None if unsafe is None else float(unsafe),
            truncated,
            language,
            tuple((s[0], s[1], s[2]) for s in spans),
        )


class CoreSchemaError(ValueError):
    """A stored verdict core is not of this code's shape."""


_FIELD_NAMES = tuple(f.name for f in fields(VerdictCore))
_SCORE_LENGTHS = (len(LABEL_KEYS), len(LABEL_KEYS) + len(SAFETY_KEYS))
#: Changes with any field name, their order, or the label set; part of every cache key.
CORE_SCHEMA = hashlib.blake2b(
    "\x00".join((*_FIELD_NAMES, "|", *LABEL_KEYS, "|", *SAFETY_KEYS)).encode(), digest_size=4
).hexdigest()
