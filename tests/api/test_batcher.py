"""The micro-batcher on the real pipeline with tiny models: order, shared batches, repeated ids, closing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from moderator.api.batcher import BatcherClosed, MicroBatcher
from moderator.api.metrics import ApiMetrics
from moderator.core.pipeline import InputMessage, Pipeline
from moderator.core.policy import load_policy
from moderator.metrics import Metrics
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from moderator.settings import DEFAULT_POLICY
from topics import DeadLetter, Verdict


def _comment(record_id: str, text: str) -> InputMessage:
    return InputMessage("comment", orjson.dumps({"id": record_id, "text": text}))


@pytest.fixture
def pipeline(tiny_classifier_dir: Path, tiny_judge_dir: Path) -> Pipeline:
    options = RuntimeOptions(device="cpu", intra_op_threads=1)
    return Pipeline(
        load_classifier(tiny_classifier_dir, options),
        load_judge(tiny_judge_dir, options),
        load_policy(DEFAULT_POLICY),
        metrics=Metrics(),
    )


def test_concurrent_requests_share_batches_and_keep_their_own_results(pipeline: Pipeline) -> None:
    metrics = ApiMetrics(pipeline.metrics)

    async def run() -> list[list[Verdict | DeadLetter]]:
        batcher = MicroBatcher(pipeline, metrics, max_rows=64, max_chars=100_000, max_wait_s=0.05)
        batcher.start()
        try:
            # every request reuses the ids "a" and "b": the API never refuses a repeated id
            requests = [
                [_comment("a", f"안녕하세요 {i}"), _comment("b", f"좋은 하루 {i}")] for i in range(10)
            ]
            requests.append([_comment("a", "   ")])
            return await asyncio.gather(*(batcher.submit(r) for r in requests))
        finally:
            await batcher.close()

    results = asyncio.run(run())
    for pair in results[:10]:
        assert [type(o) for o in pair] == [Verdict, Verdict]
        assert [o.id for o in pair] == ["a", "b"]
        assert all(o.source is not None and o.source.topic == "api" for o in pair)
    assert isinstance(results[10][0], DeadLetter) and results[10][0].reason == "empty_text"
    batches = metrics.batch_inputs._sum.get(), sum(b.get() for b in metrics.batch_inputs._buckets)
    assert batches[0] == 21 and batches[1] < 11, "21 texts from 11 requests in fewer batches than requests"


def test_rows_and_chars_close_a_batch(pipeline: Pipeline) -> None:
    metrics = ApiMetrics(pipeline.metrics)

    async def run() -> None:
        batcher = MicroBatcher(pipeline, metrics, max_rows=4, max_chars=10_000, max_wait_s=0.05)
        batcher.start()
        await batcher.submit([_comment(str(i), f"글 {i}") for i in range(10)])
        await batcher.close()
        with pytest.raises(BatcherClosed):
            await batcher.submit([_comment("x", "늦은 글")])

    asyncio.run(run())
    counts = [b.get() for b in metrics.batch_inputs._buckets]
    assert metrics.batch_inputs._sum.get() == 10 and sum(counts) == 3, "4 + 4 + 2"


def test_an_idle_batcher_does_not_wait_out_the_window(pipeline: Pipeline) -> None:
    """With nothing in the pipeline a request starts at once; the window only applies under load."""
    metrics = ApiMetrics(pipeline.metrics)

    async def run() -> None:
        batcher = MicroBatcher(pipeline, metrics, max_rows=64, max_chars=100_000, max_wait_s=60.0)
        batcher.start()
        try:
            (verdict,) = await asyncio.wait_for(batcher.submit([_comment("a", "안녕하세요")]), 20)
            assert isinstance(verdict, Verdict)
        finally:
            await batcher.close()

    asyncio.run(run())
