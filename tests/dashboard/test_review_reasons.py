"""The item page's reasons are given in the terms of the policy, or the profile, that decided the verdict."""

from __future__ import annotations

from typing import Any

from moderator.core.policy import parse_policy
from moderator.dashboard.review_pages import _why
from moderator.dashboard.store import Item

POLICY = parse_policy(
    {
        "name": "p",
        "labels": {"*": {"threshold": 0.5, "block": 0.9}},
        "safety": {"*": {"threshold": 0.5, "block": 0.9}},
        "judge": {"review": 0.5, "block": 0.8},
        "profiles": {
            "kids": {"judge": {"review": 0.2}, "safety": {"self_harm": {"threshold": 0.1, "block": 0.9}}}
        },
        "bots": {"sudagom": "kids"},
    }
)


def _item(verdict: dict[str, Any], categories: list[str]) -> Item:
    return Item(
        id="r1", kind="reply", ts=0.0, severity=0.3, action="review", categories=categories, verdict=verdict,
        channel=None, language="ko", status="open", decided_by=None, decided_at=None, labels=[],
        v_topic="verdicts", v_partition=0, v_offset=0,
    )  # fmt: skip


def test_a_profiled_verdict_is_explained_by_its_profiles_levels() -> None:
    verdict = {"policy": POLICY.version, "profile": "kids", "scores": {"self_harm": 0.3}, "unsafe": 0.3}
    assert _why(_item(verdict, ["self_harm"]), POLICY) == [
        "decided under the policy's 'kids' profile",
        "self_harm: 0.300 ≥ threshold 0.100",
        "judge: P(unsafe) 0.300 ≥ review 0.200",
    ]
    # without the profile the base policy's levels are quoted (and its judge level was not reached)
    assert _why(_item({**verdict, "profile": None}, ["self_harm"]), POLICY) == [
        "self_harm: 0.300 ≥ threshold 0.500"
    ]


def test_a_category_named_under_its_threshold_is_explained_by_the_level_it_reached() -> None:
    """An attribute level or the leading-category rule names a category below its threshold; the page
    quotes the level from the verdict's own ``why``, never a threshold the score did not reach."""
    from topics.labels import LABEL_KEYS, SAFETY_KEYS

    doc = {
        "name": "a",
        "labels": {"*": {"threshold": 0.5, "block": 0.9}},
        "safety": {"*": {"threshold": 0.8, "block": 0.95}, "drugs": {"threshold": 0.6, "attribute": 0.2}},
        "judge": {"review": 0.4, "block": 0.9, "name_leading": 0.02},
    }
    policy = parse_policy(doc)
    scores = [0.0] * (len(LABEL_KEYS) + len(SAFETY_KEYS))
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("drugs")] = 0.25
    attributed = policy.decide(scores, 0.5)
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("drugs")] = 0.0
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("crime")] = 0.1
    leading = policy.decide(scores, 0.5)
    pages = {}
    for decision, key, score in ((attributed, "drugs", 0.25), (leading, "crime", 0.1)):
        verdict = {
            "policy": policy.version,
            "scores": {key: score},
            "unsafe": 0.5,
            "why": [w.to_dict() for w in decision.why],
        }
        pages[key] = _why(_item(verdict, decision.categories), policy)
    assert (
        pages["drugs"][0]
        == "drugs: 0.250 ≥ attribute level 0.200 (named because the judge flagged the reply)"
    )
    assert pages["crime"][0].startswith("crime: 0.100, the highest safety score (≥ 0.020)")
    assert "a guess at which harm" in pages["crime"][0]
    for lines in pages.values():
        assert "threshold" not in lines[0] and lines[1].startswith("judge: P(unsafe) 0.500")
