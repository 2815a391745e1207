"""The policy's explanations, unread text and languages it was not validated on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from moderator.core.policy import LanguageRule, PolicyError, load_policy, parse_policy
from moderator.settings import DEFAULT_POLICY
from topics import LABEL_KEYS, Verdict, Why


def probs(**values: float) -> np.ndarray:
    row = np.zeros(len(LABEL_KEYS), dtype=np.float32)
    for key, value in values.items():
        row[LABEL_KEYS.index(key)] = value
    return row


POLICY: dict[str, Any] = {
    "name": "t",
    "labels": {"*": {"threshold": 0.5, "block": 0.9}, "religion": {"threshold": 0.3}},
    "judge": {"review": 0.5, "block": 0.8},
}


def test_why_names_label_threshold_band_and_window() -> None:
    p = parse_policy(POLICY)
    d = p.decide(probs(men=0.6, region=0.95), 0.55, spans={"region": (4012, 4230), "unsafe": (0, 180)})
    assert d.action == "block"
    assert [w.to_dict() for w in d.why] == [
        {"rule": "label", "band": "review", "label": "men", "score": pytest.approx(0.6), "threshold": 0.5},
        {
            "rule": "label",
            "band": "block",
            "label": "region",
            "score": pytest.approx(0.95),
            "threshold": 0.9,
            "span": [4012, 4230],
        },
        {
            "rule": "judge",
            "band": "review",
            "label": "unsafe",
            "score": 0.55,
            "threshold": 0.5,
            "span": [0, 180],
        },
    ]
    assert p.decide(probs(clean=0.99), 0.1).why == []


def test_unread_text_is_never_allowed() -> None:
    p = parse_policy(POLICY)
    d = p.decide(probs(clean=0.99), None, truncated=True)
    assert (d.action, d.flagged) == ("review", True)
    assert d.why == [Why("truncated", "review", detail="the text is longer than the models read")]
    blocking = parse_policy({**POLICY, "truncated_action": "block"})
    assert blocking.decide(probs(clean=0.99), None, truncated=True).action == "block"
    with pytest.raises(PolicyError, match="never allows"):
        parse_policy({**POLICY, "truncated_action": "allow"})


def test_unvalidated_language_is_scored_marked_and_not_blocked() -> None:
    p = parse_policy(POLICY)
    assert p.languages == LanguageRule()
    korean = p.decide(probs(men=0.95), None, language="ko")
    assert korean.action == "block" and len(korean.why) == 1
    english = p.decide(probs(men=0.95), None, language="en")
    assert (english.action, english.categories) == ("review", ["men"])
    assert english.why[0].band == "block"  # the label's own band stays visible
    assert english.why[1].rule == "language" and "'en' is not validated" in str(english.why[1].detail)
    # a confident allow stays an allow; the language alone does not flag
    assert p.decide(probs(clean=0.99), None, language="en").action == "allow"
    # a review-everything-foreign policy (for a children's bot, say)
    strict = parse_policy(
        {**POLICY, "languages": {"validated": ["ko", "en"], "others": {"min_action": "review"}}}
    )
    assert strict.decide(probs(clean=0.99), None, language="en").action == "allow"
    d = strict.decide(probs(clean=0.99), None, language="ja")
    assert d.action == "review" and d.why[-1].rule == "language"


@pytest.mark.parametrize(
    "languages",
    [
        ["ko"],
        {"validated": "ko"},
        {"validated": ["korean"]},
        {"others": {"max_action": "delete"}},
        {"others": {"max_action": "allow", "min_action": "review"}},
        {"validated": ["ko"], "extra": 1},
    ],
)
def test_bad_language_sections_are_refused(languages: Any) -> None:
    with pytest.raises(PolicyError, match="languages"):
        parse_policy({**POLICY, "languages": languages})


def test_default_policy_reviews_unread_text_and_caps_other_languages() -> None:
    p = load_policy(DEFAULT_POLICY)
    assert p.truncated_action == "review"
    assert p.languages == LanguageRule(frozenset({"ko"}), "review", "allow")


def test_verdict_record_carries_language_and_why_and_reads_old_records() -> None:
    v = Verdict(
        id="c1",
        kind="comment",
        flagged=True,
        action="review",
        categories=["men"],
        scores={},
        unsafe=None,
        cached=False,
        model={},
        policy="t@x",
        latency_ms=1.0,
        ts=1.0,
        language="en",
        why=[Why("label", "review", "men", 0.6, 0.5, (10, 20))],
    )
    data = v.to_dict()
    assert data["language"] == "en"
    assert data["why"] == [
        {"rule": "label", "band": "review", "label": "men", "score": 0.6, "threshold": 0.5, "span": [10, 20]}
    ]
    assert Verdict.from_dict(data) == v
    old = {k: val for k, val in data.items() if k not in ("language", "why")}
    back = Verdict.from_dict(old)
    assert back.language is None and back.why == []
