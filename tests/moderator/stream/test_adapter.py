"""Each private attribute in moderator.stream.adapter still exists in the installed faust/aiokafka.

These fail loudly on a library upgrade that changes shape, before a worker silently loses its
fetch wait, its liveness signal or its bounded shutdown.
"""

from __future__ import annotations

import asyncio
import inspect
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
