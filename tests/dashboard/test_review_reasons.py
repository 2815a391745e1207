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
