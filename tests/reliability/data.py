"""Inputs for the fault tests: distinct Korean comments and replies keyed by id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from tests.fixtures.worker import produce

WORDS = (
    "오늘",
    "날씨",
    "정말",
    "좋다",
    "싫다",
    "사람들",
    "그냥",
    "뉴스",
    "댓글",
    "진짜",
    "별로",
    "최고",
    "왜",
    "이런",
)


def korean_text(i: int) -> str:
    """A short Korean sentence; the trailing tag makes every ``i`` distinct.

    The ``신뢰`` tag keeps these texts apart from the end-to-end tests' (they share the session's Redis,
    and those tests count cache hits).
    """
    return " ".join(WORDS[(i * k + k) % len(WORDS)] for k in range(1, 4 + i % 5)) + f" 신뢰{i}"


def comments(n: int, prefix: str = "c", start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}-{i}", "text": korean_text(i), "channel": "news"} for i in range(start, start + n)
    ]


def replies(n: int, prefix: str = "r", start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}-{i}", "prompt": f"질문 {i} 어떻게 생각해?", "reply": korean_text(100_000 + i)}
        for i in range(start, start + n)
    ]


def send(broker_url: str, topic: str, records: Sequence[dict[str, Any]]) -> int:
    """Produce records as JSON, keyed by id (so a partition's order is an id's order)."""
    return asyncio.run(
        produce(
            broker_url, topic, [orjson.dumps(r) for r in records], [str(r["id"]).encode() for r in records]
        )
    )
