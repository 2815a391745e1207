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
    quiet = Pipeline(
        load_classifier(multitask_dir, options), load_judge(multitask_dir, options), policy(1.0, None)
    )
    result = asyncio.run(quiet.process(messages()))
    asyncio.run(quiet.close())
    assert {v.action for v in result.verdicts} == {"allow"}
    assert all(not set(v.categories) & set(SAFETY_KEYS) for v in result.verdicts)
