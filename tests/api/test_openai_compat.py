"""The OpenAI request shapes and the category mapping, including labels the bundled models lack."""

from __future__ import annotations

import pytest

from moderator.api.openai_compat import (
    CATEGORY_SOURCES,
    OPENAI_CATEGORIES,
    SAFETY_LABEL_KEYS,
    RequestError,
    parse_moderation_request,
    to_openai_result,
)
from topics import HATE_LABEL_KEYS, LABEL_KEYS


def _verdict(scores: dict[str, float], categories: list[str], flagged: bool = True) -> dict[str, object]:
    return {"id": "x", "kind": "comment", "flagged": flagged, "categories": categories, "scores": scores}


def test_openai_has_thirteen_categories_and_every_project_label_is_mapped() -> None:
    assert len(OPENAI_CATEGORIES) == 13
    sources = {k for groups in CATEGORY_SOURCES.values() for group in groups for k in group}
    assert sources == set(HATE_LABEL_KEYS) | set(SAFETY_LABEL_KEYS)


def test_scores_max_within_a_group_min_across_groups() -> None:
    scores = dict.fromkeys(LABEL_KEYS, 0.01) | {"region": 0.8, "religion": 0.3, "profanity": 0.6}
    scores |= dict.fromkeys(SAFETY_LABEL_KEYS, 0.0) | {"violence": 0.7, "drugs": 0.4, "sexual_minors": 0.9}
    result = to_openai_result(_verdict(scores, ["region", "profanity", "violence", "sexual_minors"]))
    s, c = result["category_scores"], result["categories"]
    assert s["hate"] == 0.8 and c["hate"] is True
    assert s["hate/threatening"] == 0.7 and c["hate/threatening"] is True
    assert s["harassment"] == 0.6 and s["harassment/threatening"] == 0.6
    assert s["illicit"] == 0.4 and c["illicit"] is False, "flags follow the policy's categories"
    assert s["sexual"] == 0.9 and c["sexual"] is True and c["sexual/minors"] is True
    assert result["moderator"]["not_covered"] == [] and result["moderator"]["labels_not_output"] == []
    assert all(v == ["text"] for v in result["category_applied_input_types"].values())


def test_labels_the_model_does_not_output_score_zero_and_are_not_covered() -> None:
    scores = dict.fromkeys(LABEL_KEYS, 0.9)
    result = to_openai_result(_verdict(scores, ["profanity"]))
    assert result["category_scores"]["violence"] == 0.0 and result["category_scores"]["sexual/minors"] == 0.0
    assert result["category_scores"]["hate/threatening"] == 0.0
    assert (
        "violence" in result["moderator"]["not_covered"] and "hate" not in result["moderator"]["not_covered"]
    )
    assert set(result["moderator"]["labels_not_output"]) == set(SAFETY_LABEL_KEYS)
    assert result["category_applied_input_types"]["violence"] == []


def test_a_judge_only_flag_is_flagged_without_a_category() -> None:
    verdict = _verdict(dict.fromkeys(LABEL_KEYS, 0.0), [], flagged=True) | {"kind": "reply", "unsafe": 0.97}
    result = to_openai_result(verdict)
    assert result["flagged"] is True and not any(result["categories"].values())
    assert result["moderator"]["verdict"]["unsafe"] == 0.97


def test_safety_scores_in_a_separate_object_are_read_too() -> None:
    verdict = _verdict(dict.fromkeys(LABEL_KEYS, 0.0), ["self_harm"]) | {"safety": {"self_harm": 0.88}}
    result = to_openai_result(verdict)
    assert result["category_scores"]["self-harm/intent"] == 0.88 and result["categories"]["self-harm"] is True


@pytest.mark.parametrize(
    ("body", "texts"),
    [
        ({"input": "a"}, ["a"]),
        ({"input": ["a", "b"], "model": "omni-moderation-latest"}, ["a", "b"]),
        ({"input": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, ["a\nb"]),
    ],
)
def test_request_shapes(body: dict[str, object], texts: list[str]) -> None:
    assert parse_moderation_request(body, max_inputs=4).texts == texts


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ([], 422, "not_an_object"),
        ({"input": "a", "user": "u"}, 422, "unknown_field"),
        ({"input": None}, 422, "missing_field"),
        ({"input": 1}, 422, "wrong_type"),
        ({"input": "a", "model": 3}, 422, "wrong_type"),
        ({"input": []}, 422, "empty_text"),
        ({"input": ["a"] * 5}, 413, "too_many_inputs"),
        ({"input": ["a", {"type": "text", "text": "b"}]}, 422, "wrong_type"),
        ({"input": [{"type": "image_url", "image_url": {"url": "u"}}]}, 422, "unsupported_input"),
        ({"input": [{"type": "text", "text": 1}]}, 422, "wrong_type"),
        ({"input": [{"type": "text", "text": "a", "x": 1}]}, 422, "unknown_field"),
        ({"input": [{"type": "audio"}]}, 422, "wrong_type"),
    ],
)
def test_refusals(body: object, status: int, code: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_moderation_request(body, max_inputs=4)
    assert (err.value.status, err.value.code) == (status, code)
    assert err.value.body()["error"]["type"] == "invalid_request_error"
