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

    from moderator.settings import DEFAULT_CLASSIFIER, DEFAULT_JUDGE

    p = load_policy(DEFAULT_POLICY)
    calibrated = json.loads((DEFAULT_CLASSIFIER / "thresholds.json").read_text())["labels"]
    for key in HATE_LABEL_KEYS:
        assert p.labels[key].threshold == pytest.approx(calibrated[key], abs=1e-4), key
    judge = json.loads((DEFAULT_JUDGE / "thresholds.json").read_text())["judge"]
    assert p.judge_review == pytest.approx(judge, abs=1e-4)
