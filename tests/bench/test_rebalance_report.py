"""``bench.rebalance`` says where duplicate verdicts came from: partition, offsets, the event before."""

from __future__ import annotations

import orjson

from bench.rebalance import duplicate_sources


def _record(key: bytes, partition: int, offset: int, ts_s: float) -> tuple[bytes, bytes, int]:
    value = orjson.dumps(
        {"id": key.decode(), "source": {"topic": "in", "partition": partition, "offset": offset}}
    )
    return key, value, int(ts_s * 1000)


def test_duplicates_are_named_by_partition_offsets_and_the_event_they_followed() -> None:
    events = {"B starts": 10.0, "B verdicts": 16.0, "B SIGTERM": 19.0}
    records = [
        _record(b"a", 2, 100, 9.0),
        _record(b"b", 2, 101, 9.1),
        _record(b"c", 0, 7, 9.2),
        _record(b"a", 2, 100, 16.5),  # read again after the join
        _record(b"b", 2, 101, 16.6),
        _record(b"c", 0, 7, 20.0),  # and one after the leave
    ]
    where = duplicate_sources(records, {b"a", b"b", b"c"}, events)
    assert where == (
        "1 of partition 0 (offsets 7-7) after 'B SIGTERM'; "
        "2 of partition 2 (offsets 100-101) after 'B verdicts'"
    )
    assert duplicate_sources(records, set(), events) == ""


def test_busy_loops_spin_while_the_block_runs_and_are_gone_after() -> None:
    from bench.rebalance import busy_loops

    with busy_loops(2) as loops:
        assert len(loops) == 2 and all(loop.poll() is None for loop in loops)
    assert all(loop.returncode is not None for loop in loops)
    with busy_loops(0) as none:
        assert none == []
