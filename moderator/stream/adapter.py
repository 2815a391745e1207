"""Every private attribute of faust-streaming / aiokafka the worker relies on, in one place.

The pinned libraries (faust-streaming 0.15.3, aiokafka 0.14.0) expose no public hook for these, so
each access is a function here that fails loudly (``LibraryShapeError``) when the attribute is gone,
instead of silently degrading (a 1.5 s fetch wait, a liveness check that never sees a commit, a
shutdown with no bound). ``tests/moderator/stream/test_adapter.py`` checks each against the installed
libraries, so an upgrade that changes their shape fails the suite, not production.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.transport import by_url
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT
from faust.types.tuples import ConsumerMessage, ack_lock
from mode.utils.futures import notify

from moderator.stream.partitioner import default_partitions


class LibraryShapeError(RuntimeError):
    """A pinned library no longer has the private attribute this adapter relies on."""


log = logging.getLogger(__name__)


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


def first_acked_offsets(consumer: Any) -> dict[Any, int]:
    """Per partition, the lowest offset acked and not yet committed (partitions with none are left out).

    faust commits a partition only from its committed offset on (``Consumer._new_offset``): when the
    lowest acked offset stays beyond it, a record in between was never acked, and the partition
    commits nothing more while this worker holds it (``moderator.stream.liveness``)."""
    _require(consumer, "_acked", "faust's acked offsets")
    first: dict[Any, int] = {}
    for tp, offsets in list(consumer._acked.items()):
        lowest = min(offsets, default=None)  # acks from other threads only append
        if lowest is not None:
            first[tp] = lowest
    return first


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


#: ``route(messages)``: takes over a fetched batch of one routed topic (see ``drain_messages_batched``).
BatchRoute = Callable[[list[Any]], Awaitable[None]]


async def drain_messages_batched(
    consumer: Any, fetcher: Any, routes: Mapping[str, BatchRoute] | None = None
) -> None:
    """faust's ``Consumer._drain_messages`` with one flow-control wait per fetched batch, not per record.

    faust hands every fetched record to the streams through ``wait_first(callback(message),
    suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per record, the largest per-record cost of
    the worker (``bench.overhead``'s profile). Here one such wait covers all the records of one
    ``getmany``: each is still delivered in order, with the same gap bookkeeping and read offsets; a
    rebalance (``suspend_flow``) or a stop abandons the rest of the batch instead of the rest of one
    record, and those records were never acked, so they are fetched again from the committed offset.

    ``routes`` (topic name → coroutine function) take the records of their topics as whole batches, in
    offset order per partition, instead of one ``Event`` per record through a faust stream: each record is
    tracked on the consumer (``track_message``: ``wait_empty`` and the commit bookkeeping see it) right
    before its route takes it, and the route acks it (``Message.ack``) once it is done with it. Records
    of other topics go through faust's callback as before.
    """
    callback = consumer.callback
    getmany = consumer.getmany
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    read_offsets = consumer._read_offset
    set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    routes = routes or {}

    async def deliver(batch: list[tuple[Any, Any]]) -> None:
        routed: dict[str, list[Any]] = {}
        for tp, message in batch:
            offset = message.offset
            r_offset = read_offsets[tp]
            if r_offset is not None and offset < r_offset:
                continue  # already delivered before a seek (faust logs these as dropped)
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                await consumer._add_gap(tp, r_offset + 1, offset)
            if message.topic in routes:
                routed.setdefault(message.topic, []).append(message)
            else:
                if commit_every is not None and consumer._n_acked >= commit_every:
                    consumer._n_acked = 0
                    await consumer.commit()
                await callback(message)
            read_offsets[tp] = offset
        if routed:
            # Shielded: a rebalance or stop (suspend_flow) that cancels this delivery must not abandon
            # records already fetched and read past, half handed over: with no seek back (faust's seek
            # after an assignment can fail when another rebalance follows), the fetcher would go on
            # after them and the next records' acks could commit past them. Once tracked, they are
            # the routes'; faust's wait for unacked records at the rebalance waits for them. The
            # commit comes after the hand-over, so a cancel while it waits for the broker cannot come
            # between reading these records and handing them over.
            await asyncio.shield(hand_over(routed))
            if commit_every is not None and consumer._n_acked >= commit_every:
                consumer._n_acked = 0
                await consumer.commit()

    async def hand_over(routed: dict[str, list[Any]]) -> None:
        for topic, messages in routed.items():
            track_batch(consumer, messages)
            await routes[topic](messages)

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


def pin_batch(messages: Sequence[Any]) -> None:
    """``Message.incref()`` on every record of a batch, under one acquisition of faust's ack lock."""
    with ack_lock:
        for message in messages:
            message.refcount += 1


def track_batch(consumer: Any, messages: Sequence[Any]) -> None:
    """``Consumer.track_message`` for every record of a batch: each joins the set of records a rebalance
    or a stop waits for, and the sensors see it come in. The set is a ``WeakSet``, whose ``add`` is a
    Python method (a weak reference and a pending-removals check per record, ~2 µs a record with the
    call); here its references go into its underlying set directly, with the callback ``add`` gives
    them, after the same removals check."""
    unacked = consumer._unacked_messages
    if unacked._pending_removals:
        unacked._commit_removals()
    remove = unacked._remove
    unacked.data.update([weakref.ref(message, remove) for message in messages])
    on_message_in = consumer._on_message_in
    if next(iter(consumer.app.sensors), None) is not None:  # faust's Monitor, unless removed
        for message in messages:
            on_message_in(message.tp, message.offset, message)


def ack_batch(consumer: Any, messages: Sequence[Any]) -> None:
    """``Message.ack(consumer)`` on every record of a batch, in order, as one step.

    faust acks record by record: two acquisitions of its ack lock, a decrement, a call into
    ``Consumer.ack`` and a wake-up of its ack waiters per record (~2.7 µs a record, the largest per-record
    cost left in the worker's own loop besides the pipeline). This is the same bookkeeping, the
    last reference of each record releasing it exactly as ``ConsumerMessage.on_final_ack`` →
    ``Consumer.ack`` would, under one acquisition, with one wake-up for the batch. A record of another
    message type takes faust's own path."""
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    committed_offsets = consumer._committed_offset
    acked_indexes = consumer._acked_index
    acked_lists = consumer._acked
    unacked = consumer._unacked_messages
    released = 0
    wake = False
    with ack_lock:
        for message in messages:
            if message.acked:
                continue
            refcount = message.refcount = max(message.refcount - 1, 0)
            if refcount:
                continue
            if type(message).on_final_ack is not _FINAL_ACK:
                message.on_final_ack(consumer)
                continue
            message.acked = True
            if not acks_enabled_for(message.topic):
                continue
            wake = True
            tp, offset = message.tp, message.offset
            committed = committed_offsets[tp]
            if committed is None or offset >= committed:
                acked_index = acked_indexes[tp]
                if offset not in acked_index:
                    unacked.discard(message)
                    acked_index.add(offset)
                    acked_lists[tp].append(offset)
                    released += 1
        consumer._n_acked += released
        if wake:
            notify(consumer._waiting_for_ack)


#: the final ack ``ack_batch`` replays (``ConsumerMessage`` hands the record to ``Consumer.ack``)
_FINAL_ACK = ConsumerMessage.on_final_ack


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
    "_acked",  # read by ``commit_before_revoke``
    # ``track_batch`` and ``ack_batch``
    "_unacked_messages",
    "_on_message_in",
    "_committed_offset",
    "_acked_index",
    "_waiting_for_ack",
)


def check_drain_shape(consumer: Any) -> None:
    """Every attribute ``drain_messages_batched`` reads on a faust consumer, or ``LibraryShapeError``."""
    for attribute in _DRAIN_NEEDS:
        _require(consumer, attribute, "faust's consumer drain loop")


async def settle_before_revoke(consumer: Any, revoked: set[Any]) -> None:
    """Finish and commit the in-flight batches before faust's ``Consumer.on_partitions_revoked`` forgets
    the revoked partitions' acks (``commit_before_revoke``).

    faust's own revoke handler waits for in-flight records only *after* dropping that bookkeeping: a
    batch still in the pipeline when the rebalance began was acked into fresh bookkeeping, and the one
    commit that followed (inside faust's ``wait_empty``) only waited when it found the periodic commit
    running, so the batch stayed uncommitted and was read and verdicted again after the rebalance, by
    its new owner or by this worker keeping the partition (``bench.rebalance``: one batch, 1,000
    duplicate verdicts, in about a third of the runs). Here the flow stops (no new batch starts; faust
    stops it next anyway), the routes' batches drain, and their acks are committed while faust still
    knows them. Not on a stop: the worker's shutdown drains and commits on its own path."""
    app = consumer.app
    drain = getattr(app, "batch_drain", None)
    if revoked and drain is not None and not app.should_stop:
        consumer.stop_flow()
        await drain()
    await commit_before_revoke(consumer, revoked)


async def commit_before_revoke(consumer: Any, revoked: set[Any], attempts: int = 3) -> None:
    """Commit the acked offsets of ``revoked`` before faust's ``Consumer.on_partitions_revoked``
    forgets them.

    faust-streaming drops its per-partition ack bookkeeping (``_acked``, ``_committed_offset``) for the
    revoked partitions first and only then runs the app's revoke handler, which waits for the
    in-flight records and commits. Records acked since the last periodic commit (up to
    ``MODERATOR_BROKER_COMMIT_INTERVAL_S`` of work) were never committed: after the rebalance their
    partition, kept or not, was read again from the older offset and they got a second verdict (up to
    ~8,000 per rebalance in ``bench.rebalance``). A commit that finds the periodic one running only
    waits for it, hence the retries while acked offsets are pending. The worker is still a member of
    the old generation here, so it may commit; a failure is logged and the records are re-delivered,
    as before."""
    await commit_acked(consumer, revoked, attempts, "before a rebalance")


async def commit_acked(consumer: Any, tps: set[Any] | None, attempts: int = 3, when: str = "") -> None:
    """Commit what is acked on ``tps`` (all partitions: None), retrying while a commit only waited
    for the periodic one already running (faust's ``commit`` then returns without committing)."""
    for _ in range(attempts):
        acked = consumer._acked
        if not any(acked.get(tp) for tp in (list(acked) if tps is None else tps)):
            return
        try:
            await consumer.commit()
        except Exception as exc:  # noqa: BLE001 - at-least-once still holds: they are re-delivered
            log.warning("commit %s failed (%r); records since the last commit are re-delivered", when, exc)
            return


async def commit_to_the_end(commit: Awaitable[bool]) -> bool:
    """Await a faust commit that the caller's cancellation cannot stop halfway.

    faust's ``Consumer.commit`` takes each partition's run of acked offsets out of its bookkeeping
    (``_new_offset``) *before* it flushes the producer and commits them. Cancelled in between (the
    delivery ``wait_first`` drops when a rebalance suspends the flow, or a stopping worker's tasks),
    those offsets were neither committed nor acked any more, and every later commit of the partition
    found a hole at its start (faust commits only from the committed offset on) and committed
    nothing: the partition's whole share since then was read and verdicted again by its next owner
    (``bench.rebalance`` under load: 4,000-15,000 duplicates in half the runs). Shielded, the commit
    finishes; the cancelled caller still gets its ``CancelledError``, and other committers wait for
    it through faust's own ``_commit_fut``."""
    return await asyncio.shield(commit)


class BatchApp(faust.App):
    """A ``faust.App`` whose routed topics are consumed batch by batch (``route_batches``)."""

    #: Awaited when the worker stops, before faust waits for every tracked record to be acked: lets
    #: the routes' in-flight batches finish; False = some were not (they stay unacked, re-delivered).
    batch_drain: Callable[[], Awaitable[bool]] | None = None

    @property
    def batch_routes(self) -> dict[str, BatchRoute]:
        """Topic name → the route that takes that topic's fetched batches (``drain_messages_batched``)."""
        routes: dict[str, BatchRoute] = self.__dict__.setdefault("_batch_routes", {})
        return routes

    def route_batches(self, topic: Any, route: BatchRoute) -> None:
        """Consume ``topic`` (a faust ``Topic``) batch by batch through ``route``, with no agent."""
        for name in topic.topics:
            self.batch_routes[name] = route
        self.__dict__.setdefault("_batch_topics", []).append(topic)

    async def on_start(self) -> None:
        await super().on_start()
        # Registered before the conductor first subscribes (it waits for the agents to start): a topic
        # added later costs a resubscription, which faust delays by 45 s.
        for topic in self.__dict__.get("_batch_topics", ()):
            self.topics.add(topic)

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if self.batch_drain is not None and not await self.batch_drain():
            # faust's wait_empty would wait for the undrained records forever: commit what is acked
            await consumer.commit_and_end_transactions()
            return
        # faust's wait_empty commits once, and that commit only waits if the periodic one is running
        # (a stopping worker then left its last second of acks uncommitted: read and verdicted again)
        await commit_acked(consumer, None, when="after the drain")
        await super()._consumer_wait_empty(consumer, logger)


def app_with_fetch_wait(wait_ms: int) -> type[BatchApp]:
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
            await drain_messages_batched(self, fetcher, getattr(self.app, "batch_routes", None))

        async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
            return await commit_to_the_end(super().commit(topics, start_new_transaction))

        async def on_partitions_revoked(self, revoked: set[Any]) -> None:
            await settle_before_revoke(self, revoked)
            await super().on_partitions_revoked(revoked)

    class Transport(faust_aiokafka.Transport):
        Consumer = FetchWaitConsumer

    class App(BatchApp):
        def _new_transport(self) -> TransportT:
            url = self.conf.broker_consumer[0]
            if by_url(url) is faust_aiokafka.Transport:
                return Transport(self.conf.broker_consumer, self)
            return super()._new_transport()

    _require(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", "faust's consumer factory")
    _require(faust_aiokafka.Consumer, "_new_consumer_thread", "faust's consumer-thread factory")
    _require(faust.App, "_new_transport", "faust's transport factory")
    _require(faust.App, "_consumer_wait_empty", "faust's shutdown wait for unacked records")
    _require(faust_consumer.Consumer, "_drain_messages", "faust's consumer drain loop")
    _require(faust_consumer.Consumer, "on_partitions_revoked", "faust's revoke handler")
    _require(faust_consumer, "CONSUMER_FETCHING", "faust's fetching flag")
    return App


#: An output record: (topic, key, value).
Record = tuple[str, bytes | None, bytes]


async def _partitions(kafka: Any, records: Sequence[Record]) -> list[Any]:
    """Per record, the partition ``send`` would choose (``AIOKafkaProducer._partition`` with no
    partition given: the partitioner over the topic's partition lists), or the exception that kept it
    from one. The lists are read once per topic; with aiokafka's default partitioner, keyed records are
    hashed in one numpy pass per topic (``moderator.stream.partitioner``)."""
    out: list[Any] = [None] * len(records)
    by_topic: dict[str, list[int]] = {}
    for i, (topic, _, _) in enumerate(records):
        by_topic.setdefault(topic, []).append(i)
    partitioner = kafka._partitioner
    vectorised = type(partitioner) is DefaultPartitioner
    for topic, indices in by_topic.items():
        try:
            await kafka.client._wait_on_metadata(topic)
            metadata = kafka._metadata
            all_partitions = list(metadata.partitions_for_topic(topic))
            available = list(metadata.available_partitions_for_topic(topic))
        except Exception as exc:
            for i in indices:
                out[i] = exc
            continue
        keyed = [i for i in indices if records[i][1] is not None] if vectorised and all_partitions else []
        if keyed:
            found = default_partitions([records[i][1] or b"" for i in keyed], all_partitions)
            for i, partition in zip(keyed, found, strict=True):
                out[i] = partition
        for i in indices:
            if out[i] is None:
                try:
                    out[i] = partitioner(records[i][1], all_partitions, available)
                except Exception as exc:
                    out[i] = exc
    return out


async def send_batches(producer: Any, records: Sequence[Record]) -> list[Any]:
    """Enqueue ``records`` on faust's aiokafka producer as whole record batches, one per partition.

    faust's ``Producer.send`` costs a signal, a coroutine and a future per record, and aiokafka's
    ``send`` an accumulator append each; here each record is appended to an open ``BatchBuilder`` of its
    partition (chosen by the producer's own partitioner, so a key lands where ``send`` would put it) and
    each full or last builder is handed over with ``send_batch``. Returns, in ``records`` order, what
    each record waits on: its batch's future (resolves on the broker's ack, raises on failure) or the
    exception that kept it from being enqueued.
    """
    _require(producer, "_ensure_producer", "faust's aiokafka producer")
    kafka = producer._ensure_producer()
    for attribute in ("create_batch", "send_batch", "_partitioner", "_metadata", "client"):
        _require(kafka, attribute, "aiokafka's batch API")
    out: list[Any] = [None] * len(records)
    open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}

    async def submit(topic: str, partition: int) -> None:
        builder, indices = open_batches.pop((topic, partition))
        outcome: Any
        try:
            outcome = await kafka.send_batch(builder, topic, partition=partition)
        except Exception as exc:  # not enqueued: every record of the batch is retried by the caller
            outcome = exc
        for i in indices:
            out[i] = outcome

    partitions = await _partitions(kafka, records)
    for i, (topic, key, value) in enumerate(records):
        partition = partitions[i]
        if isinstance(partition, BaseException):
            out[i] = partition
            continue
        slot = open_batches.get((topic, partition))
        if slot is None:
            slot = open_batches[(topic, partition)] = (kafka.create_batch(), [])
        if slot[0].append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
            await submit(topic, partition)
            # an empty builder always takes its first record, whatever its size
            slot = open_batches[(topic, partition)] = (kafka.create_batch(), [])
            slot[0].append(key=key, value=value, timestamp=None)
        slot[1].append(i)
    for topic, partition in list(open_batches):
        await submit(topic, partition)
    return out
