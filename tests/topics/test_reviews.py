"""The reviews record: content hash, decoding and refusals, and the human verdict the cache carries."""

from __future__ import annotations

import orjson
import pytest

from topics import normalize_text
from topics.reviews import (
    Decision,
    HumanVerdict,
    Review,
    VerdictRef,
    content_hash,
    decode_review,
    human_action,
    review_labels,
)
from topics.validation import InvalidRecord, Reason


def review(**changes: object) -> dict:
    base = Review(
        review_id="r1",
        id="c-1",
        kind="comment",
        content_hash=content_hash("comment", "안녕 하세요"),
        decision=Decision.RELABEL,
        labels=["region"],
        reviewer="alice",
        ts=1.5,
        verdict=VerdictRef(
            "verdicts.flagged", 0, 7, "review", ["age"], {"classifier": "x"}, "p@1", {"age": 0.4}, None
        ),
        source=None,
    ).to_dict()
    base.update(changes)
    return base


def test_content_hash_is_the_same_for_every_spelling_of_one_text_and_differs_by_kind_and_prompt() -> None:
    a = content_hash("comment", normalize_text("안녕  하세요"))
    assert a == content_hash("comment", normalize_text("안녕 하세요\n")) and len(a) == 40
    assert a != content_hash("reply", normalize_text("안녕 하세요"), "")
    assert content_hash("reply", "b", "a") != content_hash("reply", "ab", "")
    assert content_hash("reply", "x", None) != content_hash("reply", "x", "")


def test_a_review_round_trips() -> None:
    parsed = decode_review(orjson.dumps(review()))
    assert parsed.decision is Decision.RELABEL and parsed.labels == ["region"]
    assert parsed.verdict.offset == 7 and parsed.verdict.scores == {"age": 0.4}
    assert decode_review(orjson.dumps(parsed.to_dict())) == parsed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"decision": "maybe"}, Reason.WRONG_TYPE),
        ({"labels": ["unsafe"]}, Reason.WRONG_TYPE),  # the judge's label is for replies only
        ({"content_hash": "nothex"}, Reason.WRONG_TYPE),
        ({"reviewer": None}, Reason.WRONG_TYPE),
        ({"ts": True}, Reason.WRONG_TYPE),
    ],
)
def test_bad_reviews_are_refused_with_a_reason(change: dict, reason: Reason) -> None:
    with pytest.raises(InvalidRecord) as refused:
        decode_review(orjson.dumps(review(**change)))
    assert refused.value.reason is reason


def test_missing_fields_and_non_objects_are_refused() -> None:
    data = review()
    del data["verdict"]
    with pytest.raises(InvalidRecord, match="verdict"):
        decode_review(orjson.dumps(data))
    with pytest.raises(InvalidRecord):
        decode_review(b"[1]")
    with pytest.raises(InvalidRecord):
        decode_review(b"{")


def test_what_a_decision_means_for_repeats() -> None:
    assert human_action(Decision.APPROVE, []) == "allow"
    assert human_action(Decision.REMOVE, ["age"]) == "block"
    assert human_action(Decision.RELABEL, ["region", "unsafe"]) == "block"
    assert "unsafe" in review_labels("reply") and "unsafe" not in review_labels("comment")
    human = HumanVerdict.from_review(decode_review(orjson.dumps(review(labels=["region"]))))
    assert human.action == "block" and human.categories == ["region"]
    assert HumanVerdict.from_dict(orjson.loads(orjson.dumps(human.to_dict()))) == human


@pytest.mark.parametrize("bad", [None, {}, {"decision": "approve"}, {**{"decision": "nope"}}, "x", []])
def test_a_malformed_cached_decision_reads_as_none(bad: object) -> None:
    assert HumanVerdict.from_dict(bad) is None
