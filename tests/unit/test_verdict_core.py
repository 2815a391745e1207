"""The typed verdict core and its stored form: exact shape or nothing."""

from __future__ import annotations

import orjson
import pytest

from moderator.core.cache import KEY_PREFIX, cache_key
from moderator.core.verdict_core import CORE_SCHEMA, CoreSchemaError, VerdictCore
from topics import LABEL_KEYS


def test_round_trip_keeps_every_field_and_rounds_once() -> None:
    core = VerdictCore.of([0.1234567] * len(LABEL_KEYS), 0.7654321, truncated=True)
    assert core.scores[0] == 0.123457 and core.unsafe == 0.765432
    assert VerdictCore.from_bytes(core.to_bytes()) == core
    windowed = VerdictCore.of(
        [0.5] * len(LABEL_KEYS), None, False, language="en", spans={"region": (4012, 4230), "unsafe": (0, 90)}
    )
    assert windowed.spans == (("region", 4012, 4230), ("unsafe", 0, 90))
    assert VerdictCore.from_bytes(windowed.to_bytes()) == windowed


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(v="00000000"),  # written by code with another core shape
        lambda d: d.update(probs=d.pop("scores")),  # a renamed field
        lambda d: d.pop("truncated"),  # a dropped field
        lambda d: d.update(extra=1),  # an added field
        lambda d: d.update(scores=d["scores"][:-1]),  # a label missing
        lambda d: d.update(unsafe="high"),  # a wrong type
        lambda d: d.update(spans=[["region", 1]]),  # a span without its end
        lambda d: d.update(language=7),  # a language that is no code
    ],
    ids=["schema", "renamed", "dropped", "added", "short", "type", "span", "language"],
)
def test_any_other_shape_is_refused_not_half_read(mutate) -> None:  # type: ignore[no-untyped-def]
    data = orjson.loads(VerdictCore.of([0.5] * len(LABEL_KEYS), None, False).to_bytes())
    mutate(data)
    with pytest.raises(CoreSchemaError):
        VerdictCore.from_bytes(orjson.dumps(data))


def test_cache_keys_carry_the_core_schema_and_separate_every_input() -> None:
    key = cache_key("m", "p", "comment", "text")
    assert key.startswith(KEY_PREFIX) and KEY_PREFIX.endswith(f":{CORE_SCHEMA}:")
    variants = {
        cache_key("m", "p", "comment", "text"),
        cache_key("m2", "p", "comment", "text"),
        cache_key("m", "p2", "comment", "text"),
        cache_key("m", "p", "reply", "text", "prompt"),
        cache_key("m", "p", "reply", "text", ""),
        cache_key("m", "p", "comment", "text2"),
    }
    assert len(variants) == 6
