"""The ``reviews`` topic: one record per human decision on a flagged verdict, keyed by the input id.

A review carries no raw text: ``content_hash`` names the (normalised) text it judges, so the worker's
verdict cache can serve the human decision for every repeat of that text, and ``source`` says where the
text itself lives on the input topic. Two reviews of one id are both kept (the topic is the history);
the later ``ts`` stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from topics.labels import HATE_LABEL_KEYS
from topics.records import Action, Kind, SourcePosition
from topics.text import content_hash
from topics.validation import InvalidRecord, Reason

__all__ = [
    "Decision",
    "HumanVerdict",
    "Review",
    "VerdictRef",
    "content_hash",
    "decode_review",
    "human_action",
]

#: The judge's label: a reply judged unsafe. Reviewers may set it on replies only.
UNSAFE_LABEL = "unsafe"


class Decision(StrEnum):
    APPROVE = "approve"  # the text is fine: the model was wrong to flag it
    REMOVE = "remove"  # the model was right: the text goes, with the flagged categories
    RELABEL = "relabel"  # the text goes, under the categories the reviewer chose


def review_labels(kind: Kind) -> tuple[str, ...]:
    """The labels a reviewer can choose for one kind of record."""
    return (*HATE_LABEL_KEYS, UNSAFE_LABEL) if kind == "reply" else HATE_LABEL_KEYS


def human_action(decision: Decision, labels: list[str]) -> Action:
    """What a repeat of a reviewed text gets: approve → allow; remove/relabel → block."""
    if decision is Decision.APPROVE:
        return "allow"
    return "block" if labels else "review"


@dataclass(frozen=True, slots=True)
class VerdictRef:
    """The flagged verdict a review answers: its place on ``verdicts.flagged`` and what it said."""

    topic: str
    partition: int
    offset: int
    action: str
    categories: list[str]
    model: dict[str, str | None]
    policy: str
    scores: dict[str, float]
    unsafe: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "action": self.action,
            "categories": self.categories,
            "model": self.model,
            "policy": self.policy,
            "scores": self.scores,
            "unsafe": self.unsafe,
        }


@dataclass(frozen=True, slots=True)
class Review:
    review_id: str
    id: str
    kind: Kind
    content_hash: str
    decision: Decision
    labels: list[str]
    reviewer: str
    ts: float
    verdict: VerdictRef
    source: SourcePosition | None
    note: str = ""
    #: the verdict's content revision (``revision`` on verdicts that carry one): a decision answers
    #: one version of a text, so an edit under the same id is reviewed again
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "review_id": self.review_id,
            "id": self.id,
            "kind": self.kind,
            "content_hash": self.content_hash,
            "decision": self.decision.value,
            "labels": self.labels,
            "reviewer": self.reviewer,
            "ts": self.ts,
            "verdict": self.verdict.to_dict(),
            "source": self.source.to_dict() if self.source else None,
            "note": self.note,
            "revision": self.revision,
        }


_HEX = frozenset("0123456789abcdef")


def _need(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise InvalidRecord(Reason.MISSING_FIELD, f"review field {name!r} is required")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidRecord(Reason.WRONG_TYPE, f"review field {name!r} has the wrong type")
    return value


def decode_review(raw: bytes | str) -> Review:
    """Parse and check one ``reviews`` record; refuses what the dashboard would never write."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(Reason.INVALID_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecord(Reason.NOT_AN_OBJECT, "a review is a JSON object")
    kind = _need(data, "kind", str)
    if kind not in ("comment", "reply"):
        raise InvalidRecord(Reason.WRONG_TYPE, f"review kind must be comment or reply, not {kind!r}")
    try:
        decision = Decision(_need(data, "decision", str))
    except ValueError:
        raise InvalidRecord(Reason.WRONG_TYPE, "review decision must be approve, remove or relabel") from None
    labels = _need(data, "labels", list)
    allowed = review_labels(kind)
    bad = [label for label in labels if label not in allowed]
    if bad:
        raise InvalidRecord(
            Reason.WRONG_TYPE, f"unknown review label(s) {bad}; allowed: {', '.join(allowed)}"
        )
    digest = _need(data, "content_hash", str)
    if len(digest) != 40 or not set(digest) <= _HEX:
        raise InvalidRecord(Reason.WRONG_TYPE, "content_hash must be 40 lowercase hex digits")
    v = _need(data, "verdict", dict)
    src = data.get("source")
    return Review(
        review_id=_need(data, "review_id", str),
        id=_need(data, "id", str),
        kind=kind,
        content_hash=digest,
        decision=decision,
        labels=[str(label) for label in labels],
        reviewer=_need(data, "reviewer", str),
        ts=float(_need(data, "ts", (int, float))),
        verdict=VerdictRef(
            topic=_need(v, "topic", str),
            partition=_need(v, "partition", int),
            offset=_need(v, "offset", int),
            action=_need(v, "action", str),
            categories=list(_need(v, "categories", list)),
            model=dict(_need(v, "model", dict)),
            policy=_need(v, "policy", str),
            scores={str(k): float(x) for k, x in _need(v, "scores", dict).items()},
            unsafe=None if v.get("unsafe") is None else float(v["unsafe"]),
        ),
        source=SourcePosition(src["topic"], int(src["partition"]), int(src["offset"]))
        if isinstance(src, dict)
        else None,
        note=str(data.get("note") or ""),
        revision=data["revision"] if isinstance(data.get("revision"), str) else None,
    )


@dataclass(frozen=True, slots=True)
class HumanVerdict:
    """The latest human decision on one text, as the dashboard stores it for the worker's cache.

    ``scores``/``unsafe`` are the model's numbers from the verdict the reviewer saw (kept so a repeat's
    verdict still carries every key); the action and categories come from the human.
    """

    decision: Decision
    labels: list[str]
    reviewer: str
    review_id: str
    ts: float
    scores: dict[str, float]
    unsafe: float | None

    @property
    def action(self) -> Action:
        return human_action(self.decision, self.labels)

    @property
    def categories(self) -> list[str]:
        return [label for label in self.labels if label in HATE_LABEL_KEYS]

    def marker(self) -> dict[str, Any]:
        """What a verdict served from this decision says about it (``verdict["human"]``)."""
        return {
            "decision": self.decision.value,
            "reviewer": self.reviewer,
            "review_id": self.review_id,
            "ts": self.ts,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.marker(), "labels": self.labels, "scores": self.scores, "unsafe": self.unsafe}

    @classmethod
    def from_review(cls, review: Review) -> HumanVerdict:
        return cls(
            decision=review.decision,
            labels=review.labels,
            reviewer=review.reviewer,
            review_id=review.review_id,
            ts=review.ts,
            scores=review.verdict.scores,
            unsafe=review.verdict.unsafe,
        )

    @classmethod
    def from_dict(cls, data: Any) -> HumanVerdict | None:
        """``None`` for anything malformed: a bad cache value must never break a batch."""
        try:
            scores = data["scores"]
            unsafe = data.get("unsafe")
            return cls(
                decision=Decision(data["decision"]),
                labels=[str(label) for label in data["labels"]],
                reviewer=str(data["reviewer"]),
                review_id=str(data["review_id"]),
                ts=float(data["ts"]),
                scores={str(k): float(v) for k, v in scores.items()},
                unsafe=None if unsafe is None else float(unsafe),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
