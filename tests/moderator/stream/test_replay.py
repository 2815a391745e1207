"""Which dead letters ``moderator replay`` re-feeds, and where to."""

from __future__ import annotations

import pytest

from moderator.cli import build_parser, main
from moderator.exits import ExitCode
from moderator.stream.replay import ReplayFilter, target_topic
from topics import DeadLetter, SourcePosition, TopicNames

TOPICS = TopicNames(comments="c", replies="r", verdicts="v", flagged="f", dead_letter="d")


def dead(reason: str = "model_error", ts: float = 100.0, **kw: object) -> DeadLetter:
    fields: dict = {"source": SourcePosition("c", 0, 1), "original": b"{}", "id": "x", "kind": "comment"}
    fields.update(kw)
    return DeadLetter(reason=reason, detail="", ts=ts, **fields)


def test_filter_by_reason_and_half_open_time_range() -> None:
    keep = ReplayFilter(frozenset({"model_error"}), since=100.0, until=200.0)
    assert keep.matches(dead(ts=100.0)) and keep.matches(dead(ts=199.9))
    assert not keep.matches(dead(ts=200.0)) and not keep.matches(dead(ts=99.9))
    assert not keep.matches(dead("invalid_json", ts=150.0))
    assert ReplayFilter().matches(dead("invalid_json", ts=0.0))


def test_target_is_the_source_topic_else_the_input_topic_of_the_kind() -> None:
    assert target_topic(dead(), TOPICS) == "c"
    assert target_topic(dead(source=SourcePosition("r", 2, 5), kind="reply"), TOPICS) == "r"
    assert target_topic(dead(source=SourcePosition("elsewhere", 0, 0), kind="reply"), TOPICS) == "r"
    assert target_topic(dead(source=None, kind=None), TOPICS) is None


def test_dead_letter_round_trips_through_its_wire_form() -> None:
    original = dead(original=b"\xff raw bytes")
    assert DeadLetter.from_dict(original.to_dict()) == original


def test_replay_refuses_an_unknown_reason_and_a_bad_time(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (["replay", "--reason", "nope"], ["replay", "--since", "yesterday-ish"]):
        assert main(argv) == ExitCode.USAGE  # one line, no traceback (moderator.exits)
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "neither epoch seconds nor an ISO date/time" in err
    assert all(line.startswith("moderator replay: ") for line in err.splitlines())
    args = parser.parse_args(["replay", "--since", "2026-11-29T21:00", "--until", "1790000000"])
    assert args.since == 1795986000.0 and args.until == 1790000000.0
