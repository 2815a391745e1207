"""BatchHandler: batches of one topic ack their records in the order they were started."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from moderator.metrics import Metrics
from moderator.stream.checkpoint import BatchHandler


class _Message:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset, self.value = "in", 0, offset, b"{}"
        self.refs = 0

    def incref(self) -> None:
        self.refs += 1


class _Pipeline:
    def prepare(self, messages: list[Any]) -> list[Any]:
        return messages

    async def finish_ordered(self, prepared: list[Any]) -> tuple[list[Any], Any]:
        return prepared, asyncio.sleep(0)


class _Sink:
    def __init__(self, delays: dict[int, float], fail: set[int] | None = None) -> None:
        self.delays, self.fail = delays, fail or set()

    async def emit(self, result: list[Any]) -> None:
        first = result[0].source.offset
        await asyncio.sleep(self.delays.get(first, 0.0))
        if first in self.fail:
            raise RuntimeError("broker refused")


class _Liveness:
    def progress(self) -> None:
        pass


def _handler(sink: _Sink, acked: list[int]) -> BatchHandler:
    return BatchHandler(
        _Pipeline(),  # type: ignore[arg-type]
        sink,  # type: ignore[arg-type]
        Metrics(),
        _Liveness(),  # type: ignore[arg-type]
        lambda messages: acked.extend(m.offset for m in messages),
        lambda messages: [m.incref() for m in messages],
    )


def test_a_batch_whose_outputs_are_acked_first_still_acks_after_the_batch_before_it() -> None:
    acked: list[int] = []
    handler = _handler(_Sink({0: 0.05}), acked)  # the first batch's sends take longest

    async def run() -> None:
        await handler.handle("comment", [_Message(0), _Message(1)])
        await handler.handle("comment", [_Message(2), _Message(3)])
        assert await handler.drain_all()

    asyncio.run(run())
    assert acked == [0, 1, 2, 3]


def test_after_a_failed_batch_later_batches_of_the_topic_stay_unacked() -> None:
    acked: list[int] = []
    handler = _handler(_Sink({0: 0.05}, fail={0}), acked)

    async def run() -> None:
        await handler.handle("comment", [_Message(0)])
        await handler.handle("comment", [_Message(1)])
        await handler.handle("reply", [_Message(7)])  # another topic is not held back
        await handler.drain_all()

    asyncio.run(run())
    assert acked == [7]


def test_drain_all_also_waits_for_batches_started_while_it_waits() -> None:
    """A rebalance drains while a fetch's hand-over may still start batches (one per chunk): those
    must be finished too before the offsets are committed."""
    acked: list[int] = []
    handler = _handler(_Sink({0: 0.05, 2: 0.05}), acked)

    async def run() -> bool:
        await handler.handle("comment", [_Message(0), _Message(1)])

        async def later_chunk() -> None:
            await asyncio.sleep(0.02)  # starts while drain_all waits for the first batch
            await handler.handle("comment", [_Message(2), _Message(3)])

        task = asyncio.ensure_future(later_chunk())
        drained = await handler.drain_all()
        await task
        return drained

    assert asyncio.run(run())
    assert acked == [0, 1, 2, 3]


def test_a_batch_a_drain_gave_up_on_is_not_waited_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebalance's drain that times out (the broker refuses writes) answers False; faust's own drain
    right after, and a shutdown's, answer False at once instead of each waiting the full bound again,
    until the batch is done."""
    from moderator.stream import checkpoint

    monkeypatch.setattr(checkpoint, "DRAIN_TIMEOUT_S", 0.05)
    acked: list[int] = []
    handler = _handler(_Sink({0: 0.3}), acked)

    async def run() -> list[bool]:
        await handler.handle("comment", [_Message(0)])
        first = await handler.drain_all()
        started = asyncio.get_running_loop().time()
        second = await handler.drain_all()
        assert asyncio.get_running_loop().time() - started < 0.04
        await asyncio.sleep(0.35)  # the batch gets through
        return [first, second, await handler.drain_all()]

    assert asyncio.run(run()) == [False, False, True]
    assert acked == [0]


def test_drain_all_waits_for_the_rest_of_a_fetch_being_handed_over() -> None:
    """One large fetch is several batches, started one after the other as room frees up: a drain that
    begins between two of them must wait for all of them, or a rebalance commits before the rest."""
    acked: list[int] = []
    handler = _handler(_Sink({0: 0.03, 1: 0.03, 2: 0.03}), acked)
    handler.max_inflight = 1

    async def run() -> bool:
        fetch = [_Message(0), _Message(1), _Message(2)]
        hand_over = asyncio.ensure_future(handler.take("comment", fetch, 1))
        await asyncio.sleep(0)  # the first batch has started; the other two wait for room
        drained = await handler.drain_all()
        assert hand_over.done()
        return drained

    assert asyncio.run(run())
    assert acked == [0, 1, 2]
