"""Liveness from offset progress: faust's known failure is an agent that stalls while lag grows.

Every few seconds the worker compares committed offsets with the high-water marks of its assigned
partitions. Lag above zero with no committed offset moving for ``stall_timeout_s`` turns ``/health``
to 503 and ``moderator_live`` to 0, so an orchestrator restarts the worker (position is safe: offsets
were never committed past unsent verdicts).

A partition can also stop committing while the others go on: a record that is never acked (a batch a
drain gave up on) leaves a hole at its committed offset, and faust commits a partition only from
there, so every later verdict of it would be read and verdicted again after the next restart or
rebalance. A partition whose acked offsets stay beyond that hole for ``stall_timeout_s`` counts as
stalled too, and ``/health`` names it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from moderator.metrics import Metrics
from moderator.stream.adapter import committed_offsets, first_acked_offsets

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
        #: partition → (committed offset, first acked offset beyond it, since when) while it has a hole
        self._holes: dict[Any, tuple[int, int, float]] = {}
        self.blocked: list[str] = []  # "topic/partition" of the partitions stalled behind a hole

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
        blocked = self._blocked_partitions(consumer, assignment, committed_map, now)
        stalled = lag > 0 and now - self._last_move > self._stall_timeout
        if stalled and self.live:
            log.error("liveness: committed offsets stalled for %.0fs with lag %d", now - self._last_move, lag)
        for name in sorted(set(blocked) - set(self.blocked)):
            log.error(
                "liveness: partition %s commits nothing for over %.0fs: %s; a restart re-delivers from the "
                "committed offset",
                name,
                self._stall_timeout,
                blocked[name],
            )
        self.blocked = sorted(blocked)
        self.live = not stalled and not blocked
        self._metrics.live.set(1 if self.live else 0)

    def _blocked_partitions(
        self, consumer: Any, assignment: Any, committed_map: dict[Any, int | None], now: float
    ) -> dict[str, str]:
        """Assigned partitions whose acked offsets have stayed beyond a hole at the committed offset for
        ``stall_timeout_s`` (the same hole, same offsets), by "topic/partition", with what is missing.
        faust's own rule (``Consumer._new_offset``): it still commits when only the committed offset
        itself is missing, or when that offset is 0 (it checks no hole then), so neither is one here."""
        first_acked = first_acked_offsets(consumer)
        holes: dict[Any, tuple[int, int, float]] = {}
        blocked: dict[str, str] = {}
        for tp in assignment:
            committed, first = committed_map.get(tp), first_acked.get(tp)
            if not committed or first is None or first - committed <= 1:
                continue
            earlier = self._holes.get(tp)
            since = earlier[2] if earlier is not None and earlier[:2] == (committed, first) else now
            holes[tp] = (committed, first, since)
            if now - since > self._stall_timeout:
                blocked[f"{tp.topic}/{tp.partition}"] = (
                    f"offsets {committed}-{first - 1} never acked, acked from {first} on"
                )
        self._holes = holes
        return blocked

    def report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "live": self.live,
            "lag": self.lag,
            "seconds_since_commit_moved": round(now - self._last_move, 1),
            "seconds_since_batch": round(now - self._last_batch, 1),
            "blocked_partitions": list(self.blocked),
        }
