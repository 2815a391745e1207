"""Liveness exports lag only for the partitions this worker holds now: after a rebalance the old owner's
series go, so a sum over workers (dashboard, lag alert, KEDA) counts each partition once."""

from __future__ import annotations

from typing import Any, NamedTuple

from moderator.metrics import Metrics
from moderator.stream.liveness import Liveness


class TP(NamedTuple):
    topic: str
    partition: int


class Consumer:
    """The three things Liveness reads from faust's consumer, with values the test sets."""

    def __init__(self) -> None:
        self.assigned: set[TP] = set()
        self.highwaters: dict[TP, int] = {}
        self._committed_offset: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP) -> int:
        return self.highwaters.get(tp, 0)


class App:
    def __init__(self) -> None:
        self.consumer = Consumer()


def lag_series(metrics: Metrics) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in metrics.registry.collect():
        if family.name == "moderator_consumer_lag":
            for sample in family.samples:
                labels: Any = sample.labels
                out[(labels["topic"], labels["partition"])] = sample.value
    return out


def test_partitions_moved_away_leave_the_lag_series() -> None:
    app, metrics = App(), Metrics()
    live = Liveness(app, metrics, stall_timeout_s=60)
    a, b = TP("comments", 0), TP("comments", 1)
    app.consumer.assigned = {a, b}
    app.consumer.highwaters = {a: 10, b: 7}
    app.consumer._committed_offset = {a: 4, b: 7}
    live.check()
    assert lag_series(metrics) == {("comments", "0"): 6, ("comments", "1"): 0}
    assert live.lag == 6

    app.consumer.assigned = {b}  # rebalance: partition 0 went to another worker
    live.check()
    assert lag_series(metrics) == {("comments", "1"): 0}
    assert live.lag == 0
