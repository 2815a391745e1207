"""Token-budget batch shaping: sort by length, cap padded tokens per batch, restore order.

A model batch costs ``rows × longest row`` tokens, so one long text padded against 63 short ones
wastes most of a batch. Sorting by length and closing a batch when its padded size would pass the
budget keeps the cost close to the real token count; callers scatter results back by index.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from moderator.runtime.options import RuntimeOptions

R = TypeVar("R")


def plan_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Split row indices into batches whose padded size (rows × longest) stays within ``max_tokens``.

    A single row longer than the budget still gets a batch of its own. Indices within a batch are in
    ascending length order; the union of batches is every index exactly once.
    """
    if max_tokens < 1 or max_rows < 1:
        raise ValueError("max_tokens and max_rows must be positive")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for idx in order:
        longest = max(lengths[idx], 1)
        if current and (len(current) + 1 > max_rows or (len(current) + 1) * longest > max_tokens):
            batches.append(current)
            current = []
        current.append(idx)
    if current:
        batches.append(current)
    return batches


def lane_budget(lengths: Sequence[int], max_tokens: int, lanes: int) -> int:
    """The padded-token budget per batch for a call run on ``lanes`` lanes: ``max_tokens``, or less for a
    call too small to give every lane work.

    A call of 16 comments fits in two 512-token batches of unequal cost, and one lane idles while the
    other finishes; cut into about two batches per lane, the pool keeps both busy (calls of 16: 95-102
    comments/s against 58-64 with the plain budget, and 61-64 on one lane of two threads; calls of 64
    unchanged). Never below the longest row, which gets a batch of its own anyway.
    """
    if lanes <= 1 or not lengths:
        return max_tokens
    padded = sum(max(n, 1) for n in lengths)
    return min(max_tokens, max(max(lengths), math.ceil(padded / (2 * lanes))))


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens the model actually processes for ``batches`` (padding included)."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)


class Lanes:
    """At most ``count`` model runs of one session at a time, from any number of calling threads.

    Runs go through one pool of ``count`` threads, so the callers together never run more than
    ``count`` batches at once (each with its own intra-op thread): a large call spreads its batches
    over the lanes, and a small call from a second caller (another HTTP micro-batch) takes a free lane
    instead of queueing behind the first. One lane runs on the calling thread, as before.

    ``map``'s ``solo``: how to run a batch on every lane's cores at once (a session with ``count``
    intra-op threads). A call of one batch that finds no other run in flight (a lone chatbot reply)
    takes it, on the calling thread: one reply pair took ~21 ms on two threads against ~26 ms on one.
    A run that starts meanwhile takes a free lane as usual; the slots still bound the runs at ``count``.
    """

    def __init__(self, count: int, name: str = "moderator-lane") -> None:
        self.count = max(1, count)
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.count)
        self._active = 0
        #: batches run solo / on a lane so far (read by tests)
        self.solo_runs = 0
        self.lane_runs = 0

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:  # started on first use: a model loaded and never run holds no threads
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.count, thread_name_prefix=self._name)
            return self._pool

    def _on_lane(self, run: Callable[[list[int]], R], rows: list[int]) -> R:
        with self._slots:
            with self._lock:
                self._active += 1
                self.lane_runs += 1
            try:
                return run(rows)
            finally:
                with self._lock:
                    self._active -= 1

    def _try_solo(self, solo: Callable[[list[int]], R], rows: list[int]) -> tuple[bool, R | None]:
        with self._lock:
            if self._active:
                return False, None
            self._active += 1
            self.solo_runs += 1
        try:
            with self._slots:
                return True, solo(rows)
        finally:
            with self._lock:
                self._active -= 1

    def map(
        self,
        run: Callable[[list[int]], R],
        batches: Sequence[list[int]],
        solo: Callable[[list[int]], R] | None = None,
    ) -> list[R]:
        """``run`` over ``batches``, results in batch order; the first error is raised once all ended."""
        if self.count == 1:
            return [run(rows) for rows in batches]
        if solo is not None and len(batches) == 1:
            alone, result = self._try_solo(solo, batches[0])
            if alone:
                return [result]  # type: ignore[list-item]
        futures = [self._executor().submit(self._on_lane, run, rows) for rows in batches]
        results: list[R] = []
        error: BaseException | None = None
        for future in futures:  # wait for every run, so none is still writing when the caller moves on
            try:
                results.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others finished
                error = error or exc
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


#: The single lane: runs on the calling thread.
ONE_LANE = Lanes(1)


def run_batched(
    lengths: Sequence[int],
    options: RuntimeOptions,
    provider: str,
    run: Callable[[list[int]], R],
    scatter: Callable[[list[int], R], None],
    lanes: Lanes = ONE_LANE,
    solo: Callable[[list[int]], R] | None = None,
) -> tuple[int, int]:
    """The one batched driver every model kind uses: plan → run → scatter.

    Plans token-budget batches for ``lengths`` on ``provider`` (smaller ones where a small call would
    leave lanes idle: ``lane_budget``), calls ``run(rows)`` per batch (on ``lanes``: ``run`` must then
    be safe to call from several threads; ``solo`` as ``Lanes.map`` takes it) and ``scatter(rows,
    result)`` on the calling thread to put each result back at its input positions. Returns (real
    tokens, padded tokens) for the metrics.
    """
    budget = lane_budget(lengths, options.batch_tokens(provider), lanes.count)
    batches = plan_batches(lengths, budget, options.max_batch_rows)
    for rows, result in zip(batches, lanes.map(run, batches, solo), strict=True):
        scatter(rows, result)
    return sum(lengths), padded_tokens(lengths, batches)
