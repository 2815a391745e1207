"""Every private attribute of faust-streaming / aiokafka the worker relies on, in one place.

The pinned libraries (faust-streaming 0.15.3, aiokafka 0.14.0) expose no public hook for these, so
each access is a function here that fails loudly (``LibraryShapeError``) when the attribute is gone,
instead of silently degrading (a 1.5 s fetch wait, a liveness check that never sees a commit, a
shutdown with no bound). ``tests/moderator/stream/test_adapter.py`` checks each against the installed
libraries, so an upgrade that changes their shape fails the suite, not production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.transport import by_url
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


def app_with_fetch_wait(wait_ms: int) -> type[faust.App]:
    """A ``faust.App`` whose Kafka consumer fetches with ``wait_ms`` (other transports unchanged)."""

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            set_fetch_max_wait(consumer, wait_ms)
            return consumer

    class FetchWaitConsumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
    return App
