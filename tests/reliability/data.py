"""Inputs for the fault tests: distinct Korean comments and replies keyed by id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from tests.fixtures.texts import korean_text as fixture_text
from tests.fixtures.worker import produce


def korean_text(i: int) -> str:
    """The ``신뢰`` tag keeps these texts apart from the end-to-end tests' (they share the session's
    Redis, and those tests count cache hits)."""
    return fixture_text(i, tag="신뢰")


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
