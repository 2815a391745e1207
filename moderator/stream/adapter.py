"""Every private attribute of faust-streaming / aiokafka the worker relies on, in one place.

The pinned libraries (faust-streaming 0.15.3, aiokafka 0.14.0) expose no public hook for these, so
each access is a function here that fails loudly (``LibraryShapeError``) when the attribute is gone,
instead of silently degrading (a 1.5 s fetch wait, a liveness check that never sees a commit, a
shutdown with no bound). ``tests/moderator/stream/test_adapter.py`` checks each against the installed
libraries, so an upgrade that changes their shape fails the suite, not production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from faust.transport import by_url
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT


class LibraryShapeError(RuntimeError):
    """A pinned library no longer has the private attribute this adapter relies on."""


def _require(obj: Any, attribute: str, what: str) -> None:
    if not hasattr(obj, attribute):
        raise LibraryShapeError(
            f"{type(obj).__name__} has no {attribute!r} ({what}); the installed faust-streaming/aiokafka "
            "differ from the pinned versions: see moderator/stream/adapter.py"
        )


def set_fetch_max_wait(consumer: Any, wait_ms: int) -> None:
    """aiokafka reads ``_fetch_max_wait_ms`` when ``start()`` builds its Fetcher; faust passes a fixed one."""
    _require(consumer, "_fetch_max_wait_ms", "aiokafka's consumer fetch wait")
    consumer._fetch_max_wait_ms = wait_ms


def committed_offsets(consumer: Any) -> dict[Any, int | None]:
    """faust's consumer keeps the offsets it committed (next offset to read) per TopicPartition here."""
    _require(consumer, "_committed_offset", "faust's committed offsets")
    offsets: dict[Any, int | None] = consumer._committed_offset
    return offsets


def worker_with_first_stop_hook(on_first_stop: Callable[[], None]) -> type[faust.Worker]:
    """``faust.Worker`` calling ``on_first_stop`` once, when the first stop signal schedules shutdown."""
    _require(faust.Worker, "_schedule_shutdown", "mode's signal-to-shutdown hook")

    class HookedWorker(faust.Worker):
        _first_stop_seen = False

        def _schedule_shutdown(self, signal: Any) -> None:
            if not self._first_stop_seen:
                self._first_stop_seen = True
                on_first_stop()
            super()._schedule_shutdown(signal)

    return HookedWorker


async def drain_messages_batched(consumer: Any, fetcher: Any) -> None:
    """faust's ``Consumer._drain_messages`` with one flow-control wait per fetched batch, not per record.

    faust hands every fetched record to the streams through ``wait_first(callback(message),
    suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per record, the largest per-record cost of
    the worker (``bench.overhead``'s profile). Here one such wait covers all the records of one
    ``getmany``: each is still delivered in order, through the same callback, with the same gap
    bookkeeping and read offsets; a rebalance (``suspend_flow``) or a stop abandons the rest of the
    batch instead of the rest of one record, and those records were never acked, so they are fetched
    again from the committed offset.
    """
    callback = consumer.callback
    getmany = consumer.getmany
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    read_offsets = consumer._read_offset
    set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for

    async def deliver(batch: list[tuple[Any, Any]]) -> None:
        for tp, message in batch:
            offset = message.offset
            r_offset = read_offsets[tp]
            if r_offset is not None and offset < r_offset:
                continue  # already delivered before a seek (faust logs these as dropped)
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                await consumer._add_gap(tp, r_offset + 1, offset)
            if commit_every is not None and consumer._n_acked >= commit_every:
                consumer._n_acked = 0
                await consumer.commit()
            await callback(message)
            read_offsets[tp] = offset

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(faust_consumer.CONSUMER_FETCHING)
            batch = [pair async for pair in getmany(timeout=1.0)]
            await asyncio.sleep(0)  # as faust does: never hold the loop across back-to-back fetches
            if batch and not consumer.should_stop:
                await consumer.wait_first(deliver(batch), consumer.suspend_flow.wait())
            unset_flag(faust_consumer.CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            return
        raise
    finally:
        unset_flag(faust_consumer.CONSUMER_FETCHING)


_DRAIN_NEEDS = (
    "callback",
    "getmany",
    "_stopped",
    "_read_offset",
    "diag",
    "_commit_every",
    "_add_gap",
    "_n_acked",
    "commit",
    "wait_first",
    "suspend_flow",
    "consumer_stopped_errors",
)


def check_drain_shape(consumer: Any) -> None:
    """Every attribute ``drain_messages_batched`` reads on a faust consumer, or ``LibraryShapeError``."""
    for attribute in _DRAIN_NEEDS:
        _require(consumer, attribute, "faust's consumer drain loop")


def app_with_fetch_wait(wait_ms: int) -> type[faust.App]:
    """A ``faust.App`` whose Kafka consumer fetches with ``wait_ms`` and drains fetched batches at once
    (``drain_messages_batched``); other transports unchanged."""

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            set_fetch_max_wait(consumer, wait_ms)
            return consumer

    class FetchWaitConsumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def _drain_messages(self, fetcher: Any) -> None:
            check_drain_shape(self)
            await drain_messages_batched(self, fetcher)

    class Transport(faust_aiokafka.Transport):
        Consumer = FetchWaitConsumer

    class App(faust.App):
        def _new_transport(self) -> TransportT:
            url = self.conf.broker_consumer[0]
            if by_url(url) is faust_aiokafka.Transport:
                return Transport(self.conf.broker_consumer, self)
            return super()._new_transport()

    _require(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", "faust's consumer factory")
    _require(faust_aiokafka.Consumer, "_new_consumer_thread", "faust's consumer-thread factory")
    _require(faust.App, "_new_transport", "faust's transport factory")
    _require(faust_consumer.Consumer, "_drain_messages", "faust's consumer drain loop")
    _require(faust_consumer, "CONSUMER_FETCHING", "faust's fetching flag")
    return App
