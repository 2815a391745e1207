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
    """The four things Liveness reads from faust's consumer, with values the test sets."""

    def __init__(self) -> None:
        self.assigned: set[TP] = set()
        self.highwaters: dict[TP, int] = {}
        self._committed_offset: dict[TP, int] = {}
        self._acked: dict[TP, list[int]] = {}  # faust's acked, not yet committed offsets

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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _timed(monkeypatch: Any, stall_timeout_s: float, *, highwater: int, committed: int) -> Any:
    """A clock the test moves, and Liveness over partitions 0 and 1 at these offsets."""
    import moderator.stream.liveness as liveness_module

    clock = Clock()
    monkeypatch.setattr(liveness_module.time, "monotonic", clock)
    app = App()
    live = Liveness(app, Metrics(), stall_timeout_s=stall_timeout_s)
    a, b = TP("comments", 0), TP("comments", 1)
    app.consumer.assigned = {a, b}
    app.consumer.highwaters = {a: highwater, b: highwater}
    app.consumer._committed_offset = {a: committed, b: committed}
    return clock, app, live


def test_a_partition_whose_acks_stay_beyond_a_hole_is_stalled_and_named(monkeypatch: Any) -> None:
    """A record never acked at the committed offset: faust commits nothing more of that partition while
    the others go on committing, so the global check alone would never see it."""
    clock, app, live = _timed(monkeypatch, 60, highwater=5000, committed=100)
    a, b = TP("comments", 0), TP("comments", 1)
    # partition 0: offsets 100-199 never acked, 200 on acked; partition 1: a normal run from 100
    app.consumer._acked = {a: [200, 201, 202], b: [100, 101]}
    live.check()
    assert live.live and live.blocked == []  # a hole can be a batch still on its way

    for step in range(4):  # partition 1 keeps committing, partition 0 does not
        clock.now += 20
        app.consumer._committed_offset[b] += 1000
        app.consumer._acked[a].append(203 + step)  # later acks do not move the first one
        live.check()
    assert not live.live and live.blocked == ["comments/0"]
    report = live.report()
    assert report["live"] is False and report["blocked_partitions"] == ["comments/0"]

    # the missing records acked at last: faust commits again, the partition is live
    app.consumer._acked[a] = []
    app.consumer._committed_offset[a] = 207
    clock.now += 5
    live.check()
    assert live.live and live.blocked == []


def test_no_hole_when_only_the_committed_offset_itself_is_missing(monkeypatch: Any) -> None:
    """faust commits past a single missing offset at the committed one (its ``_new_offset`` rule), so
    that partition is not blocked; nor is one with nothing acked."""
    clock, app, live = _timed(monkeypatch, 10, highwater=50, committed=10)
    a, b = TP("comments", 0), TP("comments", 1)
    app.consumer._acked = {a: [11, 12], b: []}
    app.consumer.assigned.add(c := TP("comments", 2))  # committed 0: faust checks no hole there
    app.consumer.highwaters[c], app.consumer._committed_offset[c], app.consumer._acked[c] = 50, 0, [5, 6]
    for _ in range(3):
        live.check()
        clock.now += 6
        app.consumer._committed_offset[b] += 1  # commits move: the global check stays happy
    assert live.live and live.blocked == []
