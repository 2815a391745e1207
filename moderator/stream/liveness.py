"""Liveness from offset progress: faust's known failure is an agent that stalls while lag grows.

Every few seconds the worker compares committed offsets with the high-water marks of its assigned
partitions. Lag above zero with no committed offset moving for ``stall_timeout_s`` turns ``/health``
to 503 and ``moderator_live`` to 0, so an orchestrator restarts the worker (position is safe: offsets
were never committed past unsent verdicts).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from moderator.metrics import Metrics
from moderator.stream.adapter import committed_offsets

log = logging.getLogger(__name__)


class Liveness:
    def __init__(self, app: Any, metrics: Metrics, *, stall_timeout_s: float) -> None:
        self._app = app
        self._metrics = metrics
        self._stall_timeout = stall_timeout_s
        self._last_committed: dict[Any, int] = {}
        self._last_move = time.monotonic()
        self._last_batch = time.monotonic()
        self.lag = 0
        self.live = True
        self._exported: set[tuple[str, str]] = set()

    def progress(self) -> None:
        self._last_batch = time.monotonic()

    def check(self) -> None:
        consumer = getattr(self._app, "consumer", None)
        if consumer is None:
            return
        try:
            assignment = consumer.assignment()
        except Exception:  # not yet assigned
            return
        committed_map = committed_offsets(consumer)
        lag = 0
        now = time.monotonic()
        # A partition moved to another worker after a rebalance must leave this worker's series, or its
        # last lag would be summed with the new owner's forever (dashboards, the lag alert, autoscaling).
        current = {(tp.topic, str(tp.partition)) for tp in assignment}
        for labels in self._exported - current:
            for gauge in (self._metrics.consumer_lag, self._metrics.committed_offset):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        self._exported = current
        for tp in assignment:
            highwater = consumer.highwater(tp)
            committed = committed_map.get(tp)
            # faust keeps Kafka's meaning: the committed offset is the next one to read (last acked + 1),
            # and the high-water mark is the next one to be written, so lag is their difference.
            next_offset = 0 if committed is None else committed
            part_lag = max(0, (highwater or 0) - next_offset)
            lag += part_lag
            self._metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(part_lag)
            if committed is not None:
                self._metrics.committed_offset.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    committed
                )
                if self._last_committed.get(tp) != committed:
                    self._last_committed[tp] = committed
                    self._last_move = now
        self.lag = lag
        if lag == 0:
            self._last_move = now
        stalled = lag > 0 and now - self._last_move > self._stall_timeout
        if stalled and self.live:
            log.error("liveness: committed offsets stalled for %.0fs with lag %d", now - self._last_move, lag)
        self.live = not stalled
        self._metrics.live.set(1 if self.live else 0)

    def report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "live": self.live,
            "lag": self.lag,
            "seconds_since_commit_moved": round(now - self._last_move, 1),
            "seconds_since_batch": round(now - self._last_batch, 1),
        }
