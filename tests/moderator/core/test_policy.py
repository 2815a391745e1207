import numpy as np
import pytest

from moderator.core.policy import PolicyError, load_policy, parse_policy
from moderator.settings import DEFAULT_POLICY
from topics import HATE_LABEL_KEYS, LABEL_KEYS


def probs(**values: float) -> np.ndarray:
    row = np.zeros(len(LABEL_KEYS), dtype=np.float32)
    for key, value in values.items():
        row[LABEL_KEYS.index(key)] = value
    return row


POLICY = {
    "name": "t",
    "labels": {"*": {"threshold": 0.5, "block": 0.9}, "religion": {"threshold": 0.3}},
    "judge": {"review": 0.5, "block": 0.8},
}


def test_bands() -> None:
    p = parse_policy(POLICY)
    assert p.decide(probs(clean=0.99), None).action == "allow"
    d = p.decide(probs(men=0.6, clean=0.9), None)
    assert (d.flagged, d.action, d.categories) == (True, "review", ["men"])
    assert p.decide(probs(men=0.95), None).action == "block"
    # religion has its own threshold and never blocks
    d = p.decide(probs(religion=0.99), None)
    assert d.categories == ["religion"] and d.action == "review"
    assert p.decide(probs(clean=1.0), 0.6).action == "review"
    assert p.decide(probs(clean=1.0), 0.85).action == "block"
    assert "clean" not in p.decide(probs(clean=1.0, profanity=0.7), None).categories


def test_version_changes_with_any_threshold() -> None:
    a = parse_policy(POLICY)
    b = parse_policy({**POLICY, "judge": {"review": 0.55, "block": 0.8}})
    assert a.version != b.version and a.version.startswith("t@")
    assert parse_policy(dict(POLICY)).version == a.version


@pytest.mark.parametrize(
    "bad",
    [
        {"labels": {}},
        {"name": "x", "labels": {"nope": {"threshold": 0.5}}},
        {"name": "x", "labels": {"men": {"threshold": 0.5}}},
        {"name": "x", "labels": {"*": {"threshold": 1.5}}},
        {"name": "x", "labels": {"*": {"threshold": 0.5, "block": 0.2}}},
        {"name": "x", "labels": {"*": {"threshold": 0.5}}, "truncated_action": "delete"},
        {"name": "x", "labels": {"*": {"threshold": 0.5, "long": 0.4}}},
        {"name": "x", "labels": {"*": {"threshold": 0.5, "long": "high"}}},
    ],
)
def test_bad_policies_are_refused(bad: dict) -> None:
    with pytest.raises(PolicyError):
        parse_policy(bad)


def test_default_policy_loads_and_covers_every_label(tmp_path) -> None:
    p = load_policy(DEFAULT_POLICY)
    assert set(p.labels) == set(HATE_LABEL_KEYS)
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PolicyError, match="JSON"):
        load_policy(tmp_path / "bad.json")


def test_default_policy_uses_the_shipped_models_calibrated_thresholds() -> None:
    import json

    from moderator.settings import DEFAULT_MODEL
    from topics.labels import SAFETY_KEYS

    p = load_policy(DEFAULT_POLICY)
    calibrated = json.loads((DEFAULT_MODEL / "thresholds.json").read_text())
    for key in HATE_LABEL_KEYS:
        assert p.labels[key].threshold == pytest.approx(calibrated["labels"][key], abs=1e-4), key
    for key in SAFETY_KEYS:
        assert p.safety[key].threshold == pytest.approx(calibrated["safety"][key], abs=1e-4), key
    assert p.judge_review == pytest.approx(calibrated["unsafe"], abs=1e-4)
    # the seeds' bots care most about sexual content with minors and self-harm: they block earlier
    for key in ("sexual_minors", "self_harm"):
        block = p.safety[key].block
        assert block is not None and block < (p.labels["profanity"].block or 1.0)


def test_safety_bands_categorise_and_block_only_when_present() -> None:
    import numpy as np

    from topics.labels import LABEL_KEYS, SAFETY_KEYS

    doc = {
        "name": "s",
        "labels": {"*": {"threshold": 0.5, "block": 0.9}},
        "safety": {"*": {"threshold": 0.5, "block": 0.95}, "self_harm": {"threshold": 0.3, "block": 0.5}},
        "judge": {"review": 0.5, "block": None},
    }
    p = parse_policy(doc)
    scores = np.zeros(len(LABEL_KEYS) + len(SAFETY_KEYS), np.float32)
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("self_harm")] = 0.4
    d = p.decide(scores, 0.1)
    assert d.categories == ["self_harm"] and d.action == "review"
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("self_harm")] = 0.6
    assert p.decide(scores, 0.1).action == "block"
    # ten scores (an older classifier): safety bands do not apply
    assert p.decide(scores[: len(LABEL_KEYS)], None).categories == []
    # a policy without a safety section reports safety scores but never categorises them
    old = parse_policy({k: v for k, v in doc.items() if k != "safety"})
    assert old.decide(scores, None).categories == []
    with pytest.raises(PolicyError, match="unknown safety key"):
        parse_policy({**doc, "safety": {"guns": {"threshold": 0.5}}})
    with pytest.raises(PolicyError, match="below its threshold"):
        parse_policy({**doc, "safety": {"*": {"threshold": 0.6, "block": 0.5}}})


def test_long_level_applies_only_to_scores_pooled_over_windows() -> None:
    """A score that came from one window of a long text (it has a span) reviews at ``long``; a short
    text's score at ``threshold``; the block level is the same for both."""
    p = parse_policy({"name": "l", "labels": {"*": {"threshold": 0.3, "block": 0.9, "long": 0.6}}})
    short = p.decide(probs(men=0.5), None)
    assert (short.action, short.categories) == ("review", ["men"])
    windowed = p.decide(probs(men=0.5), None, spans={"men": (100, 180), "region": (0, 80)})
    assert (windowed.action, windowed.categories, windowed.why) == ("allow", [], [])
    d = p.decide(probs(men=0.7), None, spans={"men": (100, 180)})
    assert d.action == "review" and d.why[0].threshold == 0.6 and d.why[0].span == (100, 180)
    assert p.decide(probs(men=0.95), None, spans={"men": (100, 180)}).action == "block"
    assert p.version != parse_policy({"name": "l", "labels": {"*": {"threshold": 0.3, "block": 0.9}}}).version


def test_shipped_long_levels_are_calibrated_but_left_out_of_the_default_policy() -> None:
    """The shipped model records a ``long`` level per key (never below its threshold); the default policy
    does not use them: on long dev texts they cost too much recall (model card), so a long text with any
    window over its single-text threshold goes to review. A policy opts in per key."""
    import json

    from moderator.settings import DEFAULT_MODEL
    from onnx_export.train.long_texts import FLAG_KEYS

    calibrated = json.loads((DEFAULT_MODEL / "thresholds.json").read_text())
    long = calibrated["long"]
    assert set(long) == set(FLAG_KEYS)
    for key, level in long.items():
        single = calibrated["labels"].get(key, calibrated["safety"].get(key))
        assert single <= level <= 1.0, key
    p = load_policy(DEFAULT_POLICY)
    assert all(b.long is None for b in (*p.labels.values(), *p.safety.values()))


def test_attribute_names_the_harm_of_a_reply_the_judge_flagged_and_never_changes_the_action() -> None:
    """A safety category at or over its ``attribute`` level is named only on a reply the judge flags
    (as a generative judge's category line follows its ``unsafe``); the action stays the judge's."""
    from topics.labels import SAFETY_KEYS

    doc = {
        "name": "a",
        "labels": {"*": {"threshold": 0.5, "block": 0.9}},
        "safety": {
            "*": {"threshold": 0.8, "block": 0.95},
            "drugs": {"threshold": 0.6, "block": 0.9, "attribute": 0.2},
            "crime": {"threshold": 0.7, "block": 0.9, "attribute": 0.3},
        },
        "judge": {"review": 0.4, "block": 0.9},
    }
    p = parse_policy(doc)
    scores = np.zeros(len(LABEL_KEYS) + len(SAFETY_KEYS), np.float32)
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("drugs")] = 0.25
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("crime")] = 0.1  # under its attribute level
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("violence")] = 0.5  # no attribute level: never named
    # the judge did not flag: the category is not named, the reply is allowed
    assert (p.decide(scores, 0.3).action, p.decide(scores, 0.3).categories) == ("allow", [])
    d = p.decide(scores, 0.5)
    assert (d.action, d.categories) == ("review", ["drugs"])
    assert d.why[-1].rule == "label" and d.why[-1].label == "drugs" and d.why[-1].threshold == 0.2
    assert "attributed" in str(d.why[-1].detail)
    blocked = p.decide(scores, 0.95)
    assert (blocked.action, blocked.categories) == ("block", ["drugs"])
    # a category over its own threshold is named once, by its band
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("drugs")] = 0.7
    d = p.decide(scores, 0.5)
    assert d.categories == ["drugs"] and [w.label for w in d.why] == ["drugs", "unsafe"]
    # comments (no judge score) are never attributed
    scores[len(LABEL_KEYS) + SAFETY_KEYS.index("drugs")] = 0.25
    assert p.decide(scores, None).categories == []
    assert p.version != parse_policy({**doc, "safety": {"*": {"threshold": 0.8}}}).version
    with pytest.raises(PolicyError, match="above its threshold"):
        parse_policy({**doc, "safety": {"*": {"threshold": 0.5, "attribute": 0.6}}})
    with pytest.raises(PolicyError, match="only safety categories"):
        parse_policy({**doc, "labels": {"*": {"threshold": 0.5, "attribute": 0.2}}})


def test_name_leading_names_the_top_safety_category_of_a_flagged_reply_that_names_nothing() -> None:
    """``judge.name_leading`` (opt-in): a reply the judge flags with no label or category over its
    level gets its highest-scoring safety category, marked as a guess; off by default, never on
    comments, never when something is named already, never under the floor, never changing the action;
    a profile inherits it with the rest of the judge section."""
    from topics.labels import SAFETY_KEYS

    doc = {
        "name": "lead",
        "labels": {"*": {"threshold": 0.5, "block": 0.9}},
        "safety": {"*": {"threshold": 0.8, "block": 0.95}},
        "judge": {"review": 0.4, "block": 0.9, "name_leading": 0.05},
        "profiles": {"strict": {"judge": {"review": 0.2}}},
    }
    p = parse_policy(doc)
    assert p.name_leading == 0.05 and p.profiles["strict"].name_leading == 0.05
    assert parse_policy({**doc, "judge": {"review": 0.4}}).name_leading is None
    scores = np.zeros(len(LABEL_KEYS) + len(SAFETY_KEYS), np.float32)
    col = {k: len(LABEL_KEYS) + i for i, k in enumerate(SAFETY_KEYS)}
    scores[col["drugs"]], scores[col["crime"]] = 0.3, 0.1
    d = p.decide(scores, 0.5)
    assert (d.action, d.categories) == ("review", ["drugs"])
    assert d.why[-1].label == "drugs" and d.why[-1].threshold == 0.05 and "leading" in str(d.why[-1].detail)
    assert p.decide(scores, 0.95).action == "block"  # the judge's action, whatever is named
    # off without the key; never for a comment or an unflagged reply
    assert parse_policy({**doc, "judge": {"review": 0.4}}).decide(scores, 0.5).categories == []
    assert p.decide(scores, None).categories == [] and p.decide(scores, 0.3).categories == []
    # a hate label already says which harm: nothing added
    named = scores.copy()
    named[LABEL_KEYS.index("men")] = 0.6
    assert p.decide(named, 0.5).categories == ["men"]
    # under the floor: a ranking of near-zero scores names nothing
    low = np.zeros_like(scores)
    low[col["violence"]] = 0.04
    assert p.decide(low, 0.5).categories == []
    with pytest.raises(PolicyError, match="name_leading"):
        parse_policy({**doc, "judge": {"review": 0.4, "name_leading": 2}})
