"""Each private attribute in moderator.stream.adapter still exists in the installed faust/aiokafka.

These fail loudly on a library upgrade that changes shape, before a worker silently loses its
fetch wait, its liveness signal or its bounded shutdown.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer import consumer as aiokafka_consumer_module
from faust.transport.drivers import aiokafka as faust_aiokafka

from moderator.stream import adapter


def test_aiokafka_consumer_reads_fetch_max_wait_when_it_builds_its_fetcher() -> None:
    async def build() -> AIOKafkaConsumer:  # aiokafka wants a running loop; nothing connects before start()
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")

    consumer = asyncio.run(build())
    adapter.set_fetch_max_wait(consumer, 37)
    assert consumer._fetch_max_wait_ms == 37
    # start() hands the attribute to the Fetcher: if aiokafka stops reading it there, the override is dead
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        aiokafka_consumer_module.AIOKafkaConsumer.start
    )


def test_faust_consumer_keeps_committed_offsets_by_partition() -> None:
    assert "_committed_offset" in inspect.getsource(faust.transport.consumer.Consumer.__init__)

    class Bare:
        pass

    with pytest.raises(adapter.LibraryShapeError, match="_committed_offset"):
        adapter.committed_offsets(Bare())


def test_faust_worker_routes_stop_signals_through_schedule_shutdown() -> None:
    calls: list[str] = []
    worker_class = adapter.worker_with_first_stop_hook(lambda: calls.append("first"))
    owners = [k for k in worker_class.__mro__[1:] if "_schedule_shutdown" in vars(k)]
    assert owners, "faust.Worker no longer has _schedule_shutdown"
    # mode's signal handlers must still go through it, or the hook never runs
    assert "_schedule_shutdown" in inspect.getsource(owners[0]._on_sigterm)
    klass, original = owners[0], vars(owners[0])["_schedule_shutdown"]
    worker: Any = object.__new__(worker_class)
    seen: list[Any] = []
    try:
        klass._schedule_shutdown = lambda self, sig: seen.append(sig)
        worker._schedule_shutdown("SIGTERM")
        worker._schedule_shutdown("SIGTERM")
    finally:
        klass._schedule_shutdown = original
    assert calls == ["first"] and seen == ["SIGTERM", "SIGTERM"]


def test_faust_factories_the_fetch_wait_app_overrides_exist() -> None:
    app_class = adapter.app_with_fetch_wait(100)
    assert issubclass(app_class, faust.App)
    for owner, name in (
        (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer"),
        (faust_aiokafka.Consumer, "_new_consumer_thread"),
        (faust.App, "_new_transport"),
    ):
        assert callable(getattr(owner, name)), f"{owner.__name__}.{name} is gone"


def test_faust_drain_loop_still_has_the_shape_the_batched_drain_mirrors() -> None:
    """``drain_messages_batched`` replaces faust's per-record loop; it must still read the same state."""
    source = inspect.getsource(faust.transport.consumer.Consumer._drain_messages)
    for piece in ("callback(message)", "self.suspend_flow.wait()", "_add_gap", "_read_offset", "getmany("):
        assert piece in source, f"faust's _drain_messages no longer uses {piece}"
    consumer_class = inspect.getsource(faust.transport.consumer.Consumer)
    for state in ("self._read_offset = ", "_n_acked: int", "self.suspend_flow = "):
        assert state in consumer_class, f"faust's Consumer no longer sets up {state!r}"

    class Bare:
        pass

    with pytest.raises(adapter.LibraryShapeError, match="callback"):
        adapter.check_drain_shape(Bare())


class _Flag:
    def __init__(self) -> None:
        self.value = False

    def is_set(self) -> bool:
        return self.value


class _Message:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.tp = (topic, partition)


class _DrainConsumer:
    """What ``drain_messages_batched`` reads on a faust consumer; a test sets ``_stopped``, the read
    offsets, the commit counters and ``getmany``, one fetch, that sets ``_stopped``."""

    _read_offset: dict[Any, int | None]
    _commit_every: int | None = None
    _n_acked = 0
    should_stop = False
    consumer_stopped_errors = (RuntimeError,)
    diag = type("Diag", (), {"set_flag": lambda self, f: None, "unset_flag": lambda self, f: None})()
    app = type(
        "App",
        (),
        {"topics": type("T", (), {"acks_enabled_for": lambda self, t: True})(), "sensors": ()},
    )()
    _on_message_in = None  # no sensors: never called

    def __init__(self, stopped: _Flag) -> None:
        self._stopped = stopped
        self._unacked_messages: weakref.WeakSet[Any] = weakref.WeakSet()

    async def wait_first(self, *coros: Any) -> None:
        await coros[0]
        for extra in coros[1:]:
            extra.close()


def test_routed_topics_reach_their_route_as_one_tracked_batch_in_offset_order() -> None:
    """A fetched batch: the routed topic's records go to its route at once, each tracked first; the
    others still go through faust's per-record callback; read offsets move for both."""
    fetched = [
        (("in", 0), _Message("in", 0, 5)),
        (("other", 0), _Message("other", 0, 1)),
        (("in", 1), _Message("in", 1, 0)),
        (("in", 0), _Message("in", 0, 6)),
    ]
    seen: list[tuple[str, Any]] = []
    stopped, fetcher = _Flag(), type("Fetcher", (), {})()
    fetcher._stopped = _Flag()

    class Consumer(_DrainConsumer):
        _read_offset = {("in", 0): 4, ("in", 1): None, ("other", 0): 0}

        async def callback(self, message: Any) -> None:
            seen.append(("callback", message.offset))

        async def getmany(self, timeout: float) -> Any:
            stopped.value = True  # one fetch, then stop
            for pair in fetched:
                yield pair

        async def _add_gap(self, tp: Any, start: int, end: int) -> None:
            raise AssertionError("no gap in this batch")

    async def route(messages: list[Any]) -> None:
        # tracked before the route takes them: a rebalance or a stop waits for them from here on
        tracked = sorted((m.partition, m.offset) for m in consumer._unacked_messages)
        seen.append(("route", [(m.partition, m.offset) for m in messages]))
        seen.append(("tracked", tracked))

    consumer: Any = Consumer(stopped)

    async def run() -> None:
        consumer.suspend_flow = asyncio.Event()
        await adapter.drain_messages_batched(consumer, fetcher, {"in": route})

    asyncio.run(run())
    assert seen == [
        ("callback", 1),
        ("route", [(0, 5), (1, 0), (0, 6)]),
        ("tracked", [(0, 5), (0, 6), (1, 0)]),
    ]
    assert consumer._read_offset == {("in", 0): 6, ("in", 1): 0, ("other", 0): 1}


def test_aiokafka_producer_still_has_the_batch_api_send_batches_uses() -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.client import AIOKafkaClient

    for name in ("create_batch", "send_batch", "_partition"):
        assert callable(getattr(AIOKafkaProducer, name)), name
    assert callable(AIOKafkaClient._wait_on_metadata)
    assert callable(faust_aiokafka.Producer._ensure_producer)
    # the partition a key gets from send_batches is the one send() would give it: send() asks
    # _partition, which (no explicit partition) lists the topic's partitions and asks the partitioner,
    # as send_batches does once per topic and call
    assert "self._partition(" in inspect.getsource(AIOKafkaProducer.send)
    source = inspect.getsource(AIOKafkaProducer._partition)
    assert "list(self._metadata.partitions_for_topic(topic))" in source
    assert "list(self._metadata.available_partitions_for_topic(topic))" in source
    assert "return self._partitioner(serialized_key, all_partitions, available)" in source
    assert "self._partitioner = partitioner" in inspect.getsource(AIOKafkaProducer.__init__)
    # faust's producer gives aiokafka its DefaultPartitioner unless one is configured: the one
    # send_batches hashes in numpy (moderator.stream.partitioner)
    assert "self.partitioner = DefaultPartitioner()" in inspect.getsource(faust_aiokafka.Producer)


def test_send_batches_fills_one_batch_per_partition_and_maps_each_record_to_its_batch() -> None:
    class Builder:
        def __init__(self) -> None:
            self.records: list[Any] = []

        def append(self, *, key: Any, value: Any, timestamp: Any) -> Any:
            if len(self.records) >= 2:
                return None
            self.records.append((key, value))
            return object()

    sent: list[tuple[str, int, list[Any]]] = []

    class Kafka:
        client = type("Client", (), {"_wait_on_metadata": lambda self, topic: asyncio.sleep(0)})()

        def create_batch(self) -> Builder:
            return Builder()

        _metadata = type(
            "Metadata",
            (),
            {
                "partitions_for_topic": lambda self, topic: {0, 1},
                "available_partitions_for_topic": lambda self, topic: {0, 1},
            },
        )()

        @staticmethod
        def _partitioner(key: Any, all_partitions: list[int], available: list[int]) -> int:
            assert all_partitions == [0, 1] and available == [0, 1]
            if key == b"bad":
                raise ValueError("no partition")
            return all_partitions[int(key[-1:]) % 2]

        async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> Any:
            sent.append((topic, partition, [k for k, _ in builder.records]))
            return f"fut-{len(sent)}"

    producer = type("Producer", (), {"_ensure_producer": lambda self: Kafka()})()
    records = [("v", f"k{i}".encode(), b"x") for i in range(5)] + [("v", b"bad", b"x"), ("f", b"k0", b"x")]
    out = asyncio.run(adapter.send_batches(producer, records))
    assert sent == [
        ("v", 0, [b"k0", b"k2"]),  # full when k4 came
        ("v", 1, [b"k1", b"k3"]),
        ("v", 0, [b"k4"]),
        ("f", 0, [b"k0"]),
    ]
    assert out[:5] == ["fut-1", "fut-2", "fut-1", "fut-2", "fut-3"]
    assert isinstance(out[5], ValueError) and out[6] == "fut-4"


def test_faust_forgets_the_acks_of_revoked_partitions_before_the_apps_revoke_handler() -> None:
    """Why ``commit_before_revoke`` exists: if faust-streaming stops dropping its ack bookkeeping
    before the app's handler, the early commit is no longer needed (and this test says so)."""
    from faust.transport import consumer as faust_consumer

    source = inspect.getsource(faust_consumer.Consumer.on_partitions_revoked)
    assert source.index("self._acked.pop(tp, None)") < source.index("self._on_partitions_revoked")


class _Consumer:
    """What ``commit_before_revoke`` reads: the acked offsets per partition, and ``commit``."""

    def __init__(self, acked: dict[str, list[int]], results: list[Any]) -> None:
        self._acked = acked
        self.results = results
        self.commits = 0

    async def commit(self) -> bool:
        self.commits += 1
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        if result:
            self._acked.clear()  # committed: faust removes the committed run
        return bool(result)


def test_commit_before_revoke_commits_pending_acks_and_retries_after_a_running_commit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # nothing acked on the revoked partitions: no commit
    idle = _Consumer({"other": [5]}, [])
    asyncio.run(adapter.commit_before_revoke(idle, {"p0"}))
    assert idle.commits == 0
    # the first commit only waited for the periodic one (False): committed on the second
    busy = _Consumer({"p0": [10, 11]}, [False, True])
    asyncio.run(adapter.commit_before_revoke(busy, {"p0", "p1"}))
    assert busy.commits == 2 and not busy._acked
    # a failing commit is logged, not raised: the records are re-delivered, as before
    failing = _Consumer({"p0": [3]}, [RuntimeError("broker gone")])
    asyncio.run(adapter.commit_before_revoke(failing, {"p0"}))
    assert failing.commits == 1 and "commit before a rebalance failed" in caplog.text


def _faust_consumer() -> Any:
    """A real faust consumer, never started (nothing connects); acks enabled for topic ``in`` only."""

    async def build() -> Any:
        app = faust.App("ack-batch-test", broker="kafka://127.0.0.1:1")
        app.topics.acks_enabled_for = lambda topic: topic == "in"  # what subscribing to ``in`` would set
        return app.consumer

    return asyncio.run(build())


def _ack_case() -> tuple[Any, list[Any]]:
    """Records as a worker meets them: pinned once or twice, one acked already, one below the committed
    offset, one offset fetched twice, one on a topic without acks."""
    from faust.types.tuples import TP, ConsumerMessage

    consumer = _faust_consumer()
    consumer._committed_offset[TP("in", 0)] = 3
    specs = [("in", 0, o, 1) for o in (2, 3, 4, 5)] + [("in", 1, 7, 2), ("in", 1, 8, 1), ("in", 1, 8, 1)]
    specs += [("off", 0, 1, 1)]
    messages = []
    for topic, partition, offset, pins in specs:
        message = ConsumerMessage(topic, partition, offset, 0.0, 0, None, None, b"v", None)
        for _ in range(pins):
            message.incref()
        consumer.track_message(message)
        messages.append(message)
    messages[3].ack(consumer)  # acked before the batch (offset 5)
    return consumer, messages


def _ack_state(consumer: Any, messages: list[Any]) -> Any:
    return (
        [(m.acked, m.refcount) for m in messages],
        {tp: list(v) for tp, v in consumer._acked.items() if v},
        {tp: set(v) for tp, v in consumer._acked_index.items() if v},
        consumer._n_acked,
        sorted((m.topic, m.partition, m.offset) for m in consumer._unacked_messages),
    )


def test_ack_batch_leaves_the_bookkeeping_faust_s_per_record_acks_leave() -> None:
    each_consumer, each = _ack_case()
    batch_consumer, batch = _ack_case()
    for message in each:
        message.ack(each_consumer)
    adapter.ack_batch(batch_consumer, batch)
    assert _ack_state(batch_consumer, batch) == _ack_state(each_consumer, each)
    # a record pinned twice is released by its second ack only, in both
    for message in each:
        message.ack(each_consumer)
    adapter.ack_batch(batch_consumer, batch)
    assert _ack_state(batch_consumer, batch) == _ack_state(each_consumer, each)
    state = _ack_state(batch_consumer, batch)
    assert all(acked for acked, _ in state[0]) and state[3] == 5  # 3, 4, 5, 7, 8 (once)


def test_pin_and_track_batch_do_what_incref_and_track_message_do() -> None:
    from faust.types.tuples import ConsumerMessage

    seen: list[tuple[str, int]] = []

    class Sensor(faust.Sensor):
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            seen.append((tp.topic, offset))

    consumers = [_faust_consumer(), _faust_consumer()]
    batches = [
        [ConsumerMessage("in", 0, o, 0.0, 0, None, None, b"v", None) for o in range(5)] for _ in consumers
    ]
    for consumer in consumers:
        consumer.app.sensors.add(Sensor())
    for message in batches[0]:
        message.incref()
        consumers[0].track_message(message)
    adapter.pin_batch(batches[1])
    adapter.track_batch(consumers[1], batches[1])
    assert seen[:5] == seen[5:] == [("in", o) for o in range(5)]
    assert [m.refcount for m in batches[1]] == [m.refcount for m in batches[0]] == [1] * 5
    assert set(consumers[1]._unacked_messages) == set(batches[1])
    del batches[1][0]  # the set holds records weakly, as faust's own ``add`` does
    import gc

    gc.collect()
    assert len(consumers[1]._unacked_messages) == 4


def test_faust_ack_path_still_has_the_shape_ack_batch_replays() -> None:
    from faust.types.tuples import ConsumerMessage, Message

    assert "self.decref(n)" in inspect.getsource(Message.ack)
    assert "on_final_ack(consumer)" in inspect.getsource(Message.ack)
    assert "consumer.ack(self)" in inspect.getsource(ConsumerMessage.on_final_ack)
    ack = inspect.getsource(faust.transport.consumer.Consumer.ack)
    for piece in (
        "acks_enabled_for(message.topic)",
        "self._committed_offset[tp]",
        "offset >= committed",
        "self._unacked_messages.discard(message)",
        "acked_index.add(offset)",
        "self._n_acked += 1",
        "notify(self._waiting_for_ack)",
    ):
        assert piece in ack, f"faust's Consumer.ack no longer does {piece}"
    track = inspect.getsource(faust.transport.consumer.Consumer.track_message)
    assert "self._unacked_messages.add(message)" in track and "self._on_message_in(" in track
    # the WeakSet internals ``track_batch`` fills directly
    members: weakref.WeakSet[Any] = weakref.WeakSet()
    for name in ("data", "_remove", "_pending_removals", "_commit_removals"):
        assert hasattr(members, name), name


class _RevokingConsumer(_Consumer):
    """``settle_before_revoke``'s view: the app's batch drain and flow switch, then the commit."""

    def __init__(self, calls: list[str], *, stopping: bool = False) -> None:
        super().__init__({"p0": [7]}, [True])
        self.calls = calls

        async def drain() -> bool:
            calls.append("drain")
            self._acked["p0"].append(8)  # the in-flight batch acks while faust still knows p0
            return True

        self.app = type("App", (), {"batch_drain": staticmethod(drain), "should_stop": stopping})()

    def stop_flow(self) -> None:
        self.calls.append("stop_flow")

    async def commit(self) -> bool:
        self.calls.append(f"commit {sorted(self._acked.get('p0', []))}")
        return await super().commit()


def test_settle_before_revoke_drains_the_in_flight_batches_then_commits_their_acks() -> None:
    calls: list[str] = []
    asyncio.run(adapter.settle_before_revoke(_RevokingConsumer(calls), {"p0"}))
    assert calls == ["stop_flow", "drain", "commit [7, 8]"]
    # stopping: the shutdown path drains and commits; here only what is acked is committed
    calls.clear()
    asyncio.run(adapter.settle_before_revoke(_RevokingConsumer(calls, stopping=True), {"p0"}))
    assert calls == ["commit [7]"]
    # nothing revoked (a first assignment): nothing to wait for
    calls.clear()
    asyncio.run(adapter.settle_before_revoke(_RevokingConsumer(calls), set()))
    assert calls == []


def test_the_worker_consumer_settles_before_faust_forgets_the_revoked_partitions() -> None:
    source = inspect.getsource(adapter.app_with_fetch_wait)
    assert source.index("await settle_before_revoke(self, revoked)") < source.index(
        "await super().on_partitions_revoked(revoked)"
    )


def _worker_consumer() -> Any:
    """The worker's real faust consumer class (``app_with_fetch_wait``), never started."""

    async def build() -> Any:
        app = adapter.app_with_fetch_wait(5)("commit-test", broker="kafka://127.0.0.1:1")
        app.topics.acks_enabled_for = lambda topic: topic == "in"
        return app.consumer

    return asyncio.run(build())


def test_faust_takes_acked_offsets_out_before_it_commits_them() -> None:
    """Why ``commit_to_the_end`` exists: faust's commit removes the acked run first (``_new_offset``),
    then flushes and commits; a cancel in between loses those offsets for good."""
    from faust.transport import consumer as faust_consumer

    source = inspect.getsource(faust_consumer.Consumer._new_offset)
    assert "acked[: len(batch)] = []" in source
    tps = inspect.getsource(faust_consumer.Consumer._commit_tps)
    assert tps.index("self._filter_committable_offsets(tps)") < tps.index("self._commit_offsets(")


def test_a_commit_whose_caller_is_cancelled_still_commits_the_offsets_it_took() -> None:
    """The delivery a rebalance cancels, or a stopping worker's task, may be inside a commit: the
    offsets faust already took out of its bookkeeping are committed all the same, and the next
    commit finds no hole (before: the partition committed nothing again until it moved)."""
    from faust.types.tuples import TP

    consumer = _worker_consumer()
    assert type(consumer).__name__ == "FetchWaitConsumer"
    tp = TP("in", 0)
    consumer._committed_offset[tp] = 10
    consumer._acked[tp].extend(range(10, 20))
    consumer._acked_index[tp].update(range(10, 20))
    committed: list[dict[Any, int]] = []

    async def run() -> None:
        broker = asyncio.Event()

        async def commit_offsets(offsets: dict[Any, int], start_new_transaction: bool = True) -> bool:
            await broker.wait()  # the producer flush and the broker's answer take a while
            committed.append(dict(offsets))
            consumer._committed_offset.update(offsets)
            return True

        consumer._commit_offsets = commit_offsets
        caller = asyncio.ensure_future(consumer.commit())
        await asyncio.sleep(0.01)
        assert not consumer._acked[tp]  # taken out already, not yet committed
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        broker.set()
        waiter = asyncio.ensure_future(consumer.commit())  # waits for the one still running
        assert await waiter is False
        assert committed == [{tp: 20}]
        # the partition goes on committing: no hole at the committed offset
        consumer._acked[tp].extend(range(20, 25))
        consumer._acked_index[tp].update(range(20, 25))
        assert await consumer.commit() is True
        assert committed[-1] == {tp: 25}

    asyncio.run(run())


def test_a_delivery_hands_its_records_over_before_it_commits() -> None:
    """A commit waits for the broker; a rebalance cancelling the delivery then must find the fetched
    records handed over already, not read past and dropped."""
    order: list[str] = []
    stopped, fetcher = _Flag(), type("Fetcher", (), {})()
    fetcher._stopped = _Flag()

    class Consumer(_DrainConsumer):
        _read_offset = {("in", 0): None}
        _commit_every = 1
        _n_acked = 5

        async def commit(self) -> bool:
            order.append("commit")
            return True

        async def getmany(self, timeout: float) -> Any:
            stopped.value = True
            yield ("in", 0), _Message("in", 0, 0)

    async def route(messages: list[Any]) -> None:
        order.append("route")

    consumer: Any = Consumer(stopped)
    consumer.callback = None

    async def run() -> None:
        consumer.suspend_flow = asyncio.Event()
        await adapter.drain_messages_batched(consumer, fetcher, {"in": route})

    asyncio.run(run())
    assert order == ["route", "commit"]
