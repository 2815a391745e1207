"""Policy profiles: named variants of a policy, routed per reply bot or comment channel."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
import pytest

from moderator.core.pipeline import InputMessage, Pipeline
from moderator.core.policy import PolicyError, load_policy, parse_policy
from moderator.local.noop_models import NoopClassifier, NoopJudge
from moderator.settings import DEFAULT_POLICY
from topics import SourcePosition, Verdict

BASE: dict[str, Any] = {
    "name": "p",
    "labels": {"*": {"threshold": 0.5, "block": 0.9}},
    "safety": {"*": {"threshold": 0.5, "block": 0.9}, "self_harm": {"threshold": 0.6, "block": 0.7}},
    "judge": {"review": 0.5, "block": 0.8},
    "profiles": {
        "kids": {
            "description": "stricter for a children's bot",
            "safety": {"self_harm": {"threshold": 0.1, "block": 0.7}},
            "judge": {"review": 0.005},
        },
        "feed": {"labels": {"profanity": {"threshold": 0.005, "block": 0.9}}},
    },
    "bots": {"sudagom": "kids"},
    "channels": {"kids-corner": "feed"},
}


def test_a_profile_is_the_base_with_its_own_bands_on_top() -> None:
    policy = parse_policy(BASE)
    kids = policy.profiles["kids"]
    assert kids.profile == "kids" and policy.profile is None
    assert kids.version == policy.version  # one file, one version: a verdict names the profile apart
    assert kids.safety["self_harm"].threshold == 0.1
    assert kids.safety["violence"] == policy.safety["violence"]
    assert kids.labels == policy.labels
    assert (kids.judge_review, kids.judge_block) == (0.005, 0.8)  # block kept from the base
    assert policy.profiles["feed"].labels["profanity"].threshold == 0.005
    assert policy.profiles["feed"].labels["men"] == policy.labels["men"]


def test_records_are_routed_by_bot_then_channel() -> None:
    policy = parse_policy(BASE)
    assert policy.for_record("sudagom", None).profile == "kids"
    assert policy.for_record("sudagom", "kids-corner").profile == "kids"
    assert policy.for_record(None, "kids-corner").profile == "feed"
    assert policy.for_record("other-bot", "other") is policy
    assert policy.for_record(None, None) is policy


def test_editing_a_profile_is_a_new_policy_version() -> None:
    edited = copy.deepcopy(BASE)
    edited["profiles"]["kids"]["judge"]["review"] = 0.2
    assert parse_policy(edited).version != parse_policy(BASE).version
    routed = copy.deepcopy(BASE)
    routed["bots"]["another"] = "kids"
    assert parse_policy(routed).version != parse_policy(BASE).version


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bots": {"sudagom": "missing"}}, "names profile 'missing'"),
        ({"channels": {"c": 3}}, "names profile 3"),
        ({"profiles": {"kids": {"thresholds": {}}}}, "unknown key"),
        (
            {"profiles": {"kids": {"safety": {"self_harm": {"threshold": 0.8, "block": 0.5}}}}},
            "below its threshold",
        ),
        ({"profiles": {"kids": {"safety": {"guns": {"threshold": 0.5}}}}}, "unknown safety key"),
        ({"profiles": {"kids": {"judge": {"review": 1.5}}}}, "probability"),
        ({"profiles": ["kids"]}, "'profiles' must be an object"),
        ({"profiles": {"kids": "strict"}}, "must be an object"),
    ],
)
def test_bad_profiles_and_routes_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy({**copy.deepcopy(BASE), **change})


def test_the_default_policy_ships_a_child_safety_profile_routed_nowhere() -> None:
    policy = load_policy(DEFAULT_POLICY)
    child = policy.profiles["child_safety"]
    assert policy.bots == {} and policy.channels == {}
    assert child.judge_review <= policy.judge_review
    for key in ("self_harm", "sexual_minors"):
        assert child.safety[key].threshold <= policy.safety[key].threshold
        assert child.safety[key].block == policy.safety[key].block
    assert child.labels == policy.labels


def _process(policy_doc: dict[str, Any], messages: list[InputMessage]) -> list[Verdict]:
    async def go() -> list[Verdict]:
        pipe = Pipeline(NoopClassifier(), NoopJudge(), parse_policy(policy_doc))
        try:
            result = await pipe.process(messages)
        finally:
            await pipe.close()
        assert not result.dead_letters
        return result.verdicts

    return asyncio.run(go())


def _reply(i: int, bot: str | None) -> InputMessage:
    record = {"id": f"r{i}", "prompt": "죽고 싶어", "reply": "같은 답입니다", **({"bot": bot} if bot else {})}
    return InputMessage("reply", orjson.dumps(record), SourcePosition("replies", 0, i))


def _comment(i: int, channel: str | None) -> InputMessage:
    record = {"id": f"c{i}", "text": "같은 댓글입니다", **({"channel": channel} if channel else {})}
    return InputMessage("comment", orjson.dumps(record), SourcePosition("comments", 0, i))


def test_the_pipeline_decides_each_record_under_its_profile_and_says_which() -> None:
    # the no-op models score every text alike (unsafe 0.01, every label 0.01): only the profile differs
    verdicts = _process(
        BASE,
        [
            _reply(0, "sudagom"),
            _reply(1, "other"),
            _reply(2, None),
            _comment(3, "kids-corner"),
            _comment(4, None),
        ],
    )
    by_id = {v.id: v for v in verdicts}
    assert (by_id["r0"].action, by_id["r0"].profile) == ("review", "kids")
    assert [w.rule for w in by_id["r0"].why] == ["judge"] and by_id["r0"].why[0].threshold == 0.005
    for rid in ("r1", "r2", "c4"):
        assert (by_id[rid].action, by_id[rid].profile) == ("allow", None)
    assert (by_id["c3"].action, by_id["c3"].categories, by_id["c3"].profile) == (
        "review",
        ["profanity"],
        "feed",
    )
    # the same score, cached for one record and decided for another, under two profiles in one batch
    assert by_id["r0"].scores == by_id["r1"].scores
    assert all(v.policy == parse_policy(BASE).version for v in verdicts)
    # the wire form names the profile only where one decided
    assert by_id["r0"].to_dict()["profile"] == "kids" and "profile" not in by_id["r1"].to_dict()
    assert Verdict.from_dict(by_id["r0"].to_dict()) == by_id["r0"]
