import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moderator.runtime.batching import Lanes, lane_budget, padded_tokens, plan_batches, run_batched
from moderator.runtime.options import RuntimeOptions


def test_sorted_batches_cap_padded_tokens() -> None:
    lengths = [5, 100, 6, 7, 90, 8]
    batches = plan_batches(lengths, max_tokens=200, max_rows=64)
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 200
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    # the short texts travel together instead of being padded to 100
    assert padded_tokens(lengths, batches) < len(lengths) * 100


def test_one_overlong_row_gets_its_own_batch() -> None:
    batches = plan_batches([10, 5000, 10], max_tokens=100, max_rows=8)
    assert [5000] in [[[10, 5000, 10][i] for i in b] for b in batches]


@given(
    st.lists(st.integers(min_value=0, max_value=600), max_size=200), st.integers(1, 4096), st.integers(1, 64)
)
def test_every_index_exactly_once_and_limits_hold(lengths: list[int], max_tokens: int, max_rows: int) -> None:
    batches = plan_batches(lengths, max_tokens, max_rows)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert 1 <= len(b) <= max_rows
        if len(b) > 1:
            assert len(b) * max(max(lengths[i] for i in b), 1) <= max_tokens


def test_lanes_run_every_batch_once_in_order_and_at_most_count_at_once() -> None:
    lanes = Lanes(2)
    running, peak, lock = 0, 0, threading.Lock()
    threads: set[str] = set()

    def run(rows: list[int]) -> list[int]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.current_thread().name)
        time.sleep(0.01)
        with lock:
            running -= 1
        return [r * 10 for r in rows]

    lengths = [3, 9, 1, 7, 5, 2, 8, 4]
    got: dict[int, int] = {}

    def scatter(rows: list[int], out: list[int]) -> None:
        assert threading.current_thread() is threading.main_thread()  # results land on the caller
        got.update(zip(rows, out, strict=True))

    # several callers at once still share the two lanes
    callers = [
        threading.Thread(
            target=run_batched,
            args=(
                lengths,
                RuntimeOptions(max_batch_tokens=9, max_batch_rows=2),
                "cpu",
                run,
                lambda r, o: None,
                lanes,
            ),
        )
        for _ in range(3)
    ]
    for t in callers:
        t.start()
    run_batched(lengths, RuntimeOptions(max_batch_tokens=9, max_batch_rows=2), "cpu", run, scatter, lanes)
    for t in callers:
        t.join()
    lanes.close()
    assert got == {i: i * 10 for i in range(len(lengths))}
    assert peak == 2
    assert all(name.startswith("moderator-lane") for name in threads)


def test_a_failing_batch_raises_after_the_other_lanes_finished() -> None:
    finished: list[int] = []
    lock = threading.Lock()

    def run(rows: list[int]) -> int:
        if rows == [0]:
            raise ValueError("bad batch")
        time.sleep(0.02)
        with lock:
            finished.append(rows[0])
        return rows[0]

    lanes = Lanes(2)
    with pytest.raises(ValueError, match="bad batch"):
        lanes.map(run, [[0], [1], [2], [3]])
    assert sorted(finished) == [1, 2, 3]  # no run still in flight when the error reached the caller
    lanes.close()


def test_one_lane_runs_on_the_calling_thread() -> None:
    assert (
        Lanes(1).map(lambda rows: threading.current_thread(), [[0], [1]]) == [threading.current_thread()] * 2
    )
    assert Lanes(0).count == 1


@given(st.lists(st.integers(min_value=0, max_value=300), max_size=40), st.integers(1, 6))
def test_a_small_call_gives_every_lane_work(lengths: list[int], lanes: int) -> None:
    budget = lane_budget(lengths, 512, lanes)
    assert budget <= 512
    if lanes == 1 or not lengths:
        assert budget == 512
        return
    assert budget >= max(lengths)  # the longest row still fits a batch
    batches = plan_batches(lengths, budget, 64)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    # enough batches for the lanes, unless the rows are too few (or one row dwarfs the rest)
    if budget < 512 and budget > max(lengths):
        assert len(batches) >= min(lanes, len(lengths))


def test_a_large_call_keeps_the_plain_budget() -> None:
    assert lane_budget([30] * 1000, 512, 2) == 512
    assert lane_budget([30] * 16, 512, 2) == 120  # 480 padded tokens, two batches per lane
    assert lane_budget([5, 200], 512, 2) == 200


def test_a_lone_single_batch_call_runs_solo_and_a_concurrent_one_takes_a_lane() -> None:
    lanes = Lanes(2)
    started, release = threading.Event(), threading.Event()
    where: dict[str, str] = {}

    def solo(rows: list[int]) -> str:
        started.set()
        release.wait(5)
        where["first"] = threading.current_thread().name
        return "solo"

    def lane(rows: list[int]) -> str:
        return "lane"

    first: list[list[str]] = []
    caller = threading.Thread(target=lambda: first.append(lanes.map(lane, [[0]], solo)))
    caller.start()
    assert started.wait(5)
    # the solo run holds the cores: a call arriving meanwhile takes a lane, not a second solo run
    assert lanes.map(lane, [[1]], solo) == ["lane"]
    release.set()
    caller.join()
    assert first == [["solo"]]
    assert where["first"] == caller.name  # solo runs on the calling thread
    # idle again: a single batch goes solo; a call of several batches always spreads over the lanes
    assert lanes.map(lane, [[2]], solo) == ["solo"]
    assert lanes.map(lane, [[3], [4]], solo) == ["lane", "lane"]
    assert (lanes.solo_runs, lanes.lane_runs) == (2, 3)
    assert Lanes(1).map(lane, [[0]], solo) == ["lane"]  # one lane: no solo session to speak of
    lanes.close()
