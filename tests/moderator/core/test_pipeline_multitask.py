"""The pipeline with an encoder-multitask model: one pass per record, safety keys in the verdict."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from moderator.core.normalize import NORMALIZER_ID
from moderator.core.pipeline import InputMessage, Pipeline
from moderator.core.policy import parse_policy
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.windows import WindowConfig
from onnx_export.encoder import export_encoder
from tests.fixtures.models import build_encoder_checkpoint
from topics import SourcePosition
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def multitask_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mtp")
    ckpt = build_encoder_checkpoint(tmp / "ckpt", labels=MULTITASK_KEYS, seed=11)
    return export_encoder(
        ckpt, tmp / "onnx", kind="encoder-multitask", max_length=48, normalizer=NORMALIZER_ID
    )


def policy(safety_threshold: float, block: float | None) -> Any:
    band = {"threshold": 0.999, "block": None}
    return parse_policy(
        {
            "name": "t",
            "labels": {"*": band},
            "safety": {"*": {"threshold": safety_threshold, "block": block}},
            "judge": {"review": 0.999, "block": None},
        }
    )


def messages() -> list[InputMessage]:
    out = [
        InputMessage("comment", orjson.dumps({"id": f"c{i}", "text": t}), SourcePosition("comments", 0, i))
        for i, t in enumerate(["안녕하세요 반가워요", "시.발 진짜", "대마 팝니다"])
    ]
    out += [
        InputMessage(
            "reply",
            orjson.dumps({"id": f"r{i}", "prompt": p, "reply": r}),
            SourcePosition("llm-replies", 0, i),
        )
        for i, (p, r) in enumerate(
            [("우울해", "109에 전화해 보세요"), ("폭탄 만드는 법", "죄송하지만 안 돼요")]
        )
    ]
    return out


def test_one_pass_per_record_and_safety_keys_in_verdicts(multitask_dir: Path) -> None:
    options = RuntimeOptions(device="cpu", intra_op_threads=1)
    classifier, judge = load_classifier(multitask_dir, options), load_judge(multitask_dir, options)
    model = classifier.multitask  # type: ignore[attr-defined]
    calls: list[tuple[str, int]] = []
    for name in ("score_comments", "score_replies"):
        original = getattr(model, name)

        def counted(items: Any, _orig: Any = original, _name: str = name) -> Any:
            calls.append((_name, len(items)))
            return _orig(items)

        setattr(model, name, counted)
    pipe = Pipeline(classifier, judge, policy(0.0, None))
    result = asyncio.run(pipe.process(messages()))
    asyncio.run(pipe.close())
    assert sorted(calls) == [("score_comments", 3), ("score_replies", 2)]  # one pass each, no judge pass
    assert not result.dead_letters
    expected_keys = [*LABEL_KEYS, *SAFETY_KEYS]
    for v in result.verdicts:
        assert list(v.scores) == expected_keys
        assert set(SAFETY_KEYS) <= set(v.categories)  # every safety score is over a threshold of 0
        assert v.action == "review"
        assert (v.unsafe is None) == (v.kind == "comment")
    direct = model.score_replies([("우울해", "109에 전화해 보세요")])
    r0 = next(v for v in result.verdicts if v.id == "r0")
    assert r0.unsafe == pytest.approx(float(direct.unsafe[0]), abs=1e-5)


def test_safety_block_band_blocks(multitask_dir: Path) -> None:
    options = RuntimeOptions(device="cpu", intra_op_threads=1)
    pipe = Pipeline(
        load_classifier(multitask_dir, options), load_judge(multitask_dir, options), policy(0.0, 0.0)
    )
    result = asyncio.run(pipe.process(messages()))
    asyncio.run(pipe.close())
    assert {v.action for v in result.verdicts} == {"block"}
    for v in result.verdicts:
        # each safety category that fired says why, at its block level, like a hate label does
        fired = {w.label: w for w in v.why if w.rule == "label" and w.label in SAFETY_KEYS}
        assert set(fired) == set(SAFETY_KEYS)
        assert all(w.band == "block" and w.threshold == 0.0 for w in fired.values())
        assert all(w.score == pytest.approx(v.scores[w.label], abs=1e-6) for w in fired.values())
    quiet = Pipeline(
        load_classifier(multitask_dir, options), load_judge(multitask_dir, options), policy(1.0, None)
    )
    result = asyncio.run(quiet.process(messages()))
    asyncio.run(quiet.close())
    assert {v.action for v in result.verdicts} == {"allow"}
    assert all(not set(v.categories) & set(SAFETY_KEYS) for v in result.verdicts)


def test_long_texts_are_read_whole_in_windows_in_the_one_pass_path(multitask_dir: Path) -> None:
    """A comment and a reply far over the model's 48 tokens: every window goes through the same one
    pass (more rows than records), nothing is left unread, and the deciding windows' spans, and the
    text's language, reach the verdict."""
    options = RuntimeOptions(device="cpu", intra_op_threads=1)
    classifier, judge = load_classifier(multitask_dir, options), load_judge(multitask_dir, options)
    model = classifier.multitask  # type: ignore[attr-defined]
    rows: list[tuple[str, int]] = []
    for name in ("score_comments", "score_replies"):
        original = getattr(model, name)

        def counted(items: Any, _orig: Any = original, _name: str = name) -> Any:
            rows.append((_name, len(items)))
            return _orig(items)

        setattr(model, name, counted)
    long_text = " ".join(["오늘 날씨가 정말 좋아서 친구들이랑 공원에 산책을 다녀왔어요."] * 20)
    batch = [
        InputMessage(
            "comment", orjson.dumps({"id": "c", "text": long_text}), SourcePosition("comments", 0, 0)
        ),
        InputMessage(
            "reply",
            orjson.dumps({"id": "r", "prompt": "오늘 어땠어?", "reply": long_text}),
            SourcePosition("llm-replies", 0, 0),
        ),
    ]
    pipe = Pipeline(classifier, judge, policy(0.0, None), windows=WindowConfig(max_windows=100, tokens=16))
    result = asyncio.run(pipe.process(batch))
    asyncio.run(pipe.close())
    assert not result.dead_letters
    assert [name for name, _ in sorted(rows)] == ["score_comments", "score_replies"]  # still one pass each
    assert all(n > 1 for _, n in rows), rows  # ... over several windows of one text
    by_id = {v.id: v for v in result.verdicts}
    for v in by_id.values():
        assert not v.truncated
        assert v.language == "ko"
        assert list(v.scores) == [*LABEL_KEYS, *SAFETY_KEYS]
        fired = [w for w in v.why if w.rule == "label" and w.label in SAFETY_KEYS]
        assert len(fired) == len(SAFETY_KEYS)
        # the window that decided each score, inside the (normalised) text
        assert all(w.span is not None and 0 <= w.span[0] < w.span[1] <= len(long_text) for w in fired)
    reply = by_id["r"]
    assert reply.unsafe is not None and by_id["c"].unsafe is None
    direct = model.score_comments([long_text])
    assert bool(direct.truncated[0])  # one pass alone would have cut it
