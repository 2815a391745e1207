"""Record shapes on the input and output topics.

Inputs keep the producer's original text: the worker normalises a copy for the models and the cache
key, and never writes raw text anywhere but back into the verdict stream's own id.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["comment", "reply"]
Action = Literal["allow", "review", "block"]
#: What a ``Why`` entry is about: a label's score, the judge's P(unsafe), an unread tail, the language.
Rule = Literal["label", "judge", "truncated", "language"]


@dataclass(frozen=True, slots=True)
class Why:
    """One reason for a verdict's action, so a reviewer and an API user see what fired and where.

    ``label``/``judge``: ``score`` reached ``threshold``, the level of ``band`` (``review`` or
    ``block``) for ``label``; ``span``: for a text read in several windows, the character span
    ``[start, end)`` of the window that scored highest, in the normalised text
    (``topics.normalize_text`` of the input). ``truncated``/``language``: a rule that raised or capped
    the action, with ``detail`` in words.
    """

    rule: Rule
    band: Action
    label: str | None = None
    score: float | None = None
    threshold: float | None = None
    span: tuple[int, int] | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "band": self.band}
        if self.label is not None:
            out["label"] = self.label
        if self.score is not None:
            out["score"] = self.score
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.span is not None:
            out["span"] = [self.span[0], self.span[1]]
        if self.detail is not None:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Why:
        span = data.get("span")
        return cls(
            rule=data["rule"],
            band=data["band"],
            label=data.get("label"),
            score=data.get("score"),
            threshold=data.get("threshold"),
            span=(int(span[0]), int(span[1])) if span else None,
            detail=data.get("detail"),
        )


#: In a dead letter's ``detail`` when ``original_b64`` holds only the first bytes of the record.
ORIGINAL_TRUNCATED = "original truncated to its first"


@dataclass(slots=True, unsafe_hash=True)
class SourcePosition:
    """Where a record came from: enough to find it again in the input topic.

    Hashable (the dashboard keys records by position) but not frozen: the worker builds one per input
    record, and a frozen dataclass's ``__init__`` costs ~2× a plain one's. Nothing changes one after
    it is built.
    """

    topic: str
    partition: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(slots=True)
class CommentIn:
    """A platform comment: ``{"id", "text", ...optional "author", "channel", "ts", "meta"}``.

    Not frozen: one is built per input record, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) costs several times a plain one's. Nothing keeps,
    hashes or changes it after decoding."""

    id: str
    text: str
    author: str | None = None
    channel: str | None = None
    ts: float | str | None = None
    meta: dict[str, Any] | None = None

    kind: Kind = field(default="comment", init=False)


@dataclass(slots=True)
class ReplyIn:
    """A chatbot reply with the user message it answered: ``{"id", "prompt", "reply", ...}``.

    Not frozen, for the reason ``CommentIn`` gives."""

    id: str
    prompt: str
    reply: str
    bot: str | None = None
    conversation: str | None = None
    ts: float | str | None = None
    meta: dict[str, Any] | None = None

    kind: Kind = field(default="reply", init=False)


@dataclass(slots=True)
class Verdict:
    """One verdict per valid input, keyed by the input's id (idempotent on redelivery)."""

    id: str
    kind: Kind
    flagged: bool
    action: Action
    categories: list[str]
    scores: dict[str, float]
    unsafe: float | None
    cached: bool
    model: dict[str, str | None]
    policy: str
    latency_ms: float
    ts: float
    truncated: bool = False
    source: SourcePosition | None = None
    #: ``content_revision`` of the text this verdict is for (consumers key on (id, revision)).
    revision: str | None = None
    #: the revision last verdicted under this id when it differs (the record is an edit), else None.
    supersedes: str | None = None
    #: set when a reviewer's decision on this text decided the verdict (see topics.reviews)
    human: dict[str, Any] | None = None
    #: ISO 639-1 code of the text (the reply for replies), ``und`` when undetermined; optional field
    language: str | None = None
    #: why the action is what it is (empty for a plain allow); optional field
    why: list[Why] = field(default_factory=list)
    #: the policy profile that decided it (``bots``/``channels`` in the policy), absent for the base
    #: policy; optional field
    profile: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "flagged": self.flagged,
            "action": self.action,
            "categories": self.categories,
            "scores": self.scores,
            "unsafe": self.unsafe,
            "cached": self.cached,
            "model": self.model,
            "policy": self.policy,
            "latency_ms": self.latency_ms,
            "ts": self.ts,
            "truncated": self.truncated,
            "revision": self.revision,
            "supersedes": self.supersedes,
        }
        if self.source is not None:
            out["source"] = self.source.to_dict()
        if self.human is not None:
            out["human"] = self.human
        if self.language is not None:
            out["language"] = self.language
        out["why"] = [w.to_dict() for w in self.why]
        if self.profile is not None:
            out["profile"] = self.profile
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        src = data.get("source")
        return cls(
            id=data["id"],
            kind=data["kind"],
            flagged=data["flagged"],
            action=data["action"],
            categories=list(data["categories"]),
            scores=dict(data["scores"]),
            unsafe=data.get("unsafe"),
            cached=data["cached"],
            model=dict(data["model"]),
            policy=data["policy"],
            latency_ms=data["latency_ms"],
            ts=data["ts"],
            truncated=data.get("truncated", False),
            source=SourcePosition(**src) if src else None,
            revision=data.get("revision"),
            supersedes=data.get("supersedes"),
            human=data.get("human"),
            language=data.get("language"),
            why=[Why.from_dict(w) for w in data.get("why") or ()],
            profile=data.get("profile"),
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the worker could not verdict, with the reason and the original bytes (base64)."""

    reason: str
    detail: str
    source: SourcePosition | None
    original: bytes
    id: str | None = None
    kind: Kind | None = None
    ts: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "detail": self.detail,
            "id": self.id,
            "kind": self.kind,
            "source": self.source.to_dict() if self.source else None,
            "original_b64": base64.b64encode(self.original).decode("ascii"),
            "ts": self.ts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        """Read a ``dead-letter`` record back (``moderator replay``); raises KeyError/ValueError if malformed."""
        src = data.get("source")
        return cls(
            reason=str(data["reason"]),
            detail=str(data.get("detail", "")),
            source=SourcePosition(str(src["topic"]), int(src["partition"]), int(src["offset"]))
            if src
            else None,
            original=base64.b64decode(data["original_b64"], validate=True),
            id=data.get("id"),
            kind=data.get("kind"),
            ts=float(data.get("ts") or 0.0),
        )
