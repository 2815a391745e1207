"""OpenAI moderation compatibility: request shapes in, OpenAI's 13 categories out.

A client written for ``POST https://api.openai.com/v1/moderations`` must work unchanged, so the
response has OpenAI's field names and category names; this project's labels are folded into them by
one table (``CATEGORY_SOURCES``, documented in docs/api.md). A category is the fuzzy AND (minimum) of
its groups, each group the fuzzy OR (maximum) of its labels. A label the loaded models do not output
scores 0 and the category is reported as not covered, so a zero never passes for a measured "safe".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from topics import HATE_LABEL_KEYS
from topics.labels import SAFETY_KEYS

#: Labels the safety heads add (multitask model); absent from a model that does not output them.
SAFETY_LABEL_KEYS: tuple[str, ...] = SAFETY_KEYS

_HATE_GROUP: tuple[str, ...] = tuple(k for k in HATE_LABEL_KEYS if k != "profanity")

#: OpenAI category → groups of project labels: min over groups of (max over the labels of a group).
CATEGORY_SOURCES: dict[str, tuple[tuple[str, ...], ...]] = {
    "harassment": (("profanity",),),
    "harassment/threatening": (("profanity",), ("violence",)),
    "hate": (_HATE_GROUP,),
    "hate/threatening": (_HATE_GROUP, ("violence",)),
    "illicit": (("crime", "drugs", "weapons"),),
    "illicit/violent": (("weapons",),),
    "self-harm": (("self_harm",),),
    "self-harm/intent": (("self_harm",),),
    "self-harm/instructions": (("self_harm",),),
    "sexual": (("sexual", "sexual_minors"),),
    "sexual/minors": (("sexual_minors",),),
    "violence": (("violence",),),
    "violence/graphic": (("violence",),),
}

OPENAI_CATEGORIES: tuple[str, ...] = tuple(CATEGORY_SOURCES)

_TOP_FIELDS = frozenset({"input", "model"})


class RequestError(ValueError):
    """A request the API refuses: HTTP ``status``, a stable ``code``, what to fix and where (``param``)."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        #: One entry per refused record when a request carried several.
        self.details: list[dict[str, Any]] = []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": "invalid_request_error",
            "param": self.param,
            "code": self.code,
        }
        if self.details:
            error["errors"] = self.details
        return {"error": error}


@dataclass(frozen=True, slots=True)
class ModerationRequest:
    """The texts to score (one per result) and the model name the client asked for."""

    texts: list[str]
    model: str | None


def parse_moderation_request(data: Any, *, max_inputs: int) -> ModerationRequest:
    """Validate OpenAI's request body: ``input`` as a string, a list of strings or a list of parts.

    A list of parts (``{"type": "text", "text": ...}``) is one input, as with OpenAI: its text parts
    are joined into one result. Image parts are refused (422): they would go through unmoderated.
    """
    if not isinstance(data, dict):
        raise RequestError(422, "not_an_object", f"the body must be a JSON object, got {_type(data)}")
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise RequestError(
            422, "unknown_field", f"unknown field(s) {shown}; allowed: input, model", unknown[0]
        )
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(422, "wrong_type", f"'model' must be a string, got {_type(model)}", "model")
    if "input" not in data or data["input"] is None:
        raise RequestError(422, "missing_field", "field 'input' is required", "input")
    raw = data["input"]
    if isinstance(raw, str):
        return ModerationRequest([raw], model)
    if not isinstance(raw, list):
        raise RequestError(
            422,
            "wrong_type",
            f"'input' must be a string, a list of strings or a list of content parts, got {_type(raw)}",
            "input",
        )
    if not raw:
        raise RequestError(422, "empty_text", "'input' is an empty list", "input")
    if all(isinstance(x, dict) for x in raw):
        return ModerationRequest([_join_parts(raw)], model)
    if len(raw) > max_inputs:
        raise RequestError(
            413,
            "too_many_inputs",
            f"'input' has {len(raw)} items; the limit is {max_inputs} per request",
            "input",
        )
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise RequestError(
                422,
                "wrong_type",
                f"input[{i}] must be a string, got {_type(item)} (do not mix strings and content parts)",
                f"input[{i}]",
            )
    return ModerationRequest(list(raw), model)


def _join_parts(parts: list[dict[str, Any]]) -> str:
    texts: list[str] = []
    for i, part in enumerate(parts):
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(
                    422,
                    "wrong_type",
                    f"input[{i}].text must be a string, got {_type(text)}",
                    f"input[{i}].text",
                )
            unknown = sorted(set(part) - {"type", "text"})
            if unknown:
                raise RequestError(
                    422, "unknown_field", f"input[{i}] has unknown field(s) {unknown}", f"input[{i}]"
                )
            texts.append(text)
        elif kind == "image_url":
            raise RequestError(
                422,
                "unsupported_input",
                f"input[{i}] is an image; this server moderates text only (send the text parts alone)",
                f"input[{i}]",
            )
        else:
            raise RequestError(
                422, "wrong_type", f"input[{i}].type must be 'text' (got {kind!r})", f"input[{i}].type"
            )
    return "\n".join(texts)


def label_scores(verdict: Mapping[str, Any]) -> dict[str, float]:
    """Every project label score a verdict carries: ``scores`` plus any other label-score object."""
    out: dict[str, float] = {}
    for name, value in verdict.items():
        if name == "scores" or (name in ("safety", "safety_scores") and isinstance(value, dict)):
            for key, score in value.items():
                if isinstance(score, int | float) and not isinstance(score, bool):
                    out[key] = float(score)
    return out


def to_openai_result(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAI ``results[]`` entry from a verdict record, the record itself under ``moderator``.

    A category is flagged when each of its groups has a label among the verdict's policy
    ``categories`` (the thresholds are the policy's, not OpenAI's); ``flagged`` is the verdict's own,
    so a reply the judge finds unsafe is flagged even where no category applies.
    """
    scores = label_scores(verdict)
    decided = set(verdict.get("categories") or ())
    categories: dict[str, bool] = {}
    category_scores: dict[str, float] = {}
    applied: dict[str, list[str]] = {}
    not_covered: list[str] = []
    for name, groups in CATEGORY_SOURCES.items():
        covered = all(any(k in scores for k in group) for group in groups)
        if not covered:
            not_covered.append(name)
        category_scores[name] = min(max(scores.get(k, 0.0) for k in group) for group in groups)
        categories[name] = all(any(k in decided for k in group) for group in groups)
        applied[name] = ["text"] if covered else []
    missing = sorted({k for groups in CATEGORY_SOURCES.values() for g in groups for k in g} - set(scores))
    return {
        "flagged": bool(verdict.get("flagged")),
        "categories": categories,
        "category_scores": category_scores,
        "category_applied_input_types": applied,
        "moderator": {"verdict": dict(verdict), "not_covered": not_covered, "labels_not_output": missing},
    }


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__
