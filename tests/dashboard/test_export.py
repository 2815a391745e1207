"""``moderator export-reviews`` on a real broker: the trainer's own readers load what it writes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from moderator.evaluation import read_pair_jsonl, read_unsmile_tsv
from tests.dashboard.conftest import send
from topics import LABEL_KEYS, SourcePosition, normalize_text
from topics.reviews import Decision, Review, VerdictRef, content_hash

pytestmark = pytest.mark.e2e


def review(
    rid: str,
    item: str,
    kind: str,
    text: str,
    prompt: str | None,
    decision: Decision,
    labels: list[str],
    ts: float,
    source: SourcePosition,
) -> bytes:
    ref = VerdictRef("verdicts.flagged", 0, 0, "review", [], {}, "p@1", {}, None)
    digest = content_hash(kind, normalize_text(text), None if prompt is None else normalize_text(prompt))  # type: ignore[arg-type]
    return orjson.dumps(Review(rid, item, kind, digest, decision, labels, "alice", ts, ref, source).to_dict())  # type: ignore[arg-type]


def test_export_reviews_writes_trainer_rows(broker, fresh_topics, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fresh = fresh_topics()
    comments, replies, reviews = asyncio.run(
        fresh.create(broker.url, ["comments", "llm-replies", "reviews"], partitions=2)
    )

    async def setup() -> None:
        texts = ["지역\t비하 하는\n댓글", "좋은 댓글입니다", "욕설 섞인 댓글"]
        cpos = await send(
            broker.url, comments, [orjson.dumps({"id": f"c{i}", "text": t}) for i, t in enumerate(texts)]
        )
        (rpos,) = await send(
            broker.url, replies, [orjson.dumps({"id": "r0", "prompt": "질문", "reply": "위험한 답"})]
        )
        src = [SourcePosition(comments, *p) for p in cpos]
        records = [
            # one text reviewed twice: the later decision (relabel → region) is the row
            review("1", "c0", "comment", texts[0], None, Decision.APPROVE, [], 10.0, src[0]),
            review("2", "c0", "comment", texts[0], None, Decision.RELABEL, ["region"], 20.0, src[0]),
            review("3", "c1", "comment", texts[1], None, Decision.APPROVE, [], 10.0, src[1]),
            review(
                "4",
                "c2",
                "comment",
                texts[2],
                None,
                Decision.REMOVE,
                ["profanity", "other_hate"],
                10.0,
                src[2],
            ),
            review(
                "5",
                "r0",
                "reply",
                "위험한 답",
                "질문",
                Decision.REMOVE,
                ["unsafe"],
                10.0,
                SourcePosition(replies, *rpos),
            ),
            # its text is gone from the topic: counted, not written
            review(
                "6",
                "c9",
                "comment",
                "사라진 글",
                None,
                Decision.APPROVE,
                [],
                10.0,
                SourcePosition(comments, 0, 999),
            ),
        ]
        await send(broker.url, reviews, [*records, b"not a review"])

    asyncio.run(setup())
    out = tmp_path / "export"
    env = {**os.environ, "MODERATOR_BROKER": broker.url, "MODERATOR_TOPIC_REVIEWS": reviews}
    done = subprocess.run(
        [sys.executable, "-m", "moderator", "export-reviews", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith(
        "6 reviews of 5 texts → 3 comment rows, 1 reply rows (1 texts no longer on their topic,"
        " 0 removals without a category, 1 unreadable review records skipped)"
    )
    rows = read_unsmile_tsv(out / "comments.tsv")
    labelled = {
        text: {k for k, v in zip(LABEL_KEYS, row, strict=True) if v}
        for text, row in zip(rows.texts, rows.labels, strict=True)
    }
    assert labelled == {
        "지역 비하 하는 댓글": {"region"},
        "좋은 댓글입니다": {"clean"},
        "욕설 섞인 댓글": {"profanity", "other_hate"},
    }
    pairs = read_pair_jsonl(out / "replies.jsonl")
    assert pairs.prompts == ["질문"] and pairs.replies == ["위험한 답"] and list(pairs.unsafe) == [1.0]


def test_export_reviews_without_a_broker_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "MODERATOR_BROKER": "kafka://127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "moderator", "export-reviews", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3 and done.stderr.startswith("moderator export-reviews: broker")
    assert "Traceback" not in done.stderr
