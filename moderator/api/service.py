"""What every endpoint shares: the pipeline behind the micro-batcher, limits, keys, rate limits.

Records are validated here with the topics' own decoder before they are queued, so a bad record is
refused with the same reason code the worker would dead-letter it with, and costs no model time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from moderator.api.auth import ApiKeys, RateLimiter
from moderator.api.batcher import MAX_INFLIGHT_BATCHES, MicroBatcher
from moderator.api.metrics import ApiMetrics
from moderator.api.openai_compat import RequestError
from moderator.core.pipeline import InputMessage, Pipeline
from moderator.metrics import Metrics
from moderator.settings import Settings
from topics import DeadLetter, InvalidRecord, Reason, Verdict, decode_comment, decode_reply
from topics.records import Kind

log = logging.getLogger(__name__)

#: HTTP status per refusal reason: unparseable → 400, too big → 413, the rest of bad input → 422.
REASON_STATUS: dict[str, int] = {
    Reason.INVALID_UTF8.value: 400,
    Reason.INVALID_JSON.value: 400,
    Reason.TOO_LARGE.value: 413,
    Reason.TOO_LONG.value: 413,
    Reason.MODEL_ERROR.value: 500,
}


def status_for(reason: str) -> int:
    return REASON_STATUS.get(reason, 422)


class NotReady(RuntimeError):
    pass


@dataclass
class ApiService:
    settings: Settings
    metrics: Metrics
    api_metrics: ApiMetrics
    keys: ApiKeys
    limiter: RateLimiter
    pipeline: Pipeline | None = None
    batcher: MicroBatcher | None = None
    ready: bool = False
    draining: bool = False
    stage: str = "starting"
    started: float = field(default_factory=time.monotonic)

    def attach(self, pipeline: Pipeline) -> None:
        """Models are loaded: start the micro-batcher (called on the event loop)."""
        self.pipeline = pipeline
        settings = self.settings
        self.batcher = MicroBatcher(
            pipeline,
            self.api_metrics,
            max_rows=settings.batch_size,
            max_chars=settings.api_max_batch_chars,
            max_wait_s=settings.api_batch_window_ms / 1000.0,
            # a batch in each model lane, and one more doing its Redis round trips
            max_inflight=max(MAX_INFLIGHT_BATCHES, pipeline.model_lanes + 1),
        )
        self.batcher.start()

    def model_name(self) -> str:
        if self.pipeline is None:
            return "moderator"
        return f"moderator:{self.pipeline.classifier.model_id}"

    def validate(self, kind: Kind, raw: bytes, where: str) -> None:
        """Refuse a record the worker would dead-letter: raises ``RequestError`` with its reason."""
        limits = self.settings.limits
        try:
            if kind == "comment":
                decode_comment(raw, limits)
            else:
                decode_reply(raw, limits)
        except InvalidRecord as exc:
            raise RequestError(
                status_for(exc.reason.value), exc.reason.value, f"{where}: {exc.detail}", where
            ) from None

    async def score(self, kind: Kind, records: Sequence[bytes]) -> list[dict[str, Any]]:
        """Verdict records (the ``verdicts`` topic's shape, minus ``source``) for validated records."""
        if self.batcher is None or not self.ready:
            raise NotReady(self.stage)
        received = time.perf_counter()
        outcomes = await self.batcher.submit([InputMessage(kind, raw, None, received) for raw in records])
        out: list[dict[str, Any]] = []
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, DeadLetter):
                raise RequestError(
                    status_for(outcome.reason), outcome.reason, f"[{i}]: {outcome.detail}", f"[{i}]"
                )
            assert isinstance(outcome, Verdict)
            outcome.source = None
            out.append(outcome.to_dict())
        return out

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        if self.pipeline is not None:
            await self.pipeline.close()


def comment_record(record_id: str, text: str) -> bytes:
    return orjson.dumps({"id": record_id, "text": text})


def reply_record(record_id: str, prompt: str, reply: str, bot: str | None = None) -> bytes:
    """A reply input record; ``bot`` (if any) routes it to the policy profile the policy names for it."""
    record = {"id": record_id, "prompt": prompt, "reply": reply}
    if bot is not None:
        record["bot"] = bot
    return orjson.dumps(record)


async def warm_up(pipeline: Pipeline) -> None:
    """One tiny call per model off the event loop, so the first request does not pay for lazy init."""
    await asyncio.to_thread(pipeline.classifier.predict, ["warm up"])
    await asyncio.to_thread(pipeline.judge.predict, [("warm up", "warm up")])
