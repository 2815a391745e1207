"""Micro-batching across requests (what text-embeddings-inference does for HTTP callers).

Every text of every request becomes a job on one queue. A collector takes the first job and, if a
batch is already in the pipeline, waits at most ``max_wait_s`` for more; it closes the batch at
``max_rows`` texts or ``max_chars`` characters (a token budget's free proxy: the models split a batch
by padded tokens themselves). While a batch is in the models, new jobs pile up and the next batch
leaves with all of them, so under load the batches grow towards what offline ``moderator score``
runs, and at low load a request starts at once with whatever else is already queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from moderator.api.metrics import ApiMetrics
from moderator.core.pipeline import InputMessage, Pipeline
from topics import DeadLetter, SourcePosition, Verdict

log = logging.getLogger(__name__)

#: Batches in the pipeline at once: one in the models while the next does its Redis round trips.
MAX_INFLIGHT_BATCHES = 2

Outcome = Verdict | DeadLetter


@dataclass(slots=True)
class _Job:
    message: InputMessage
    chars: int
    future: asyncio.Future[Outcome]


class BatcherClosed(RuntimeError):
    pass


class MicroBatcher:
    def __init__(
        self,
        pipeline: Pipeline,
        metrics: ApiMetrics,
        *,
        max_rows: int,
        max_chars: int,
        max_wait_s: float,
        max_inflight: int = MAX_INFLIGHT_BATCHES,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.max_rows = max(1, max_rows)
        self.max_chars = max(1, max_chars)
        self.max_wait_s = max(0.0, max_wait_s)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, max_inflight))
        self._tasks: set[asyncio.Task[None]] = set()
        self._collector: asyncio.Task[None] | None = None
        self._sequence = 0
        self._closed = False
        self.last_batch = time.monotonic()

    def start(self) -> None:
        self._collector = asyncio.create_task(self._collect(), name="moderator-api-batcher")

    @property
    def running(self) -> bool:
        return self._collector is not None and not self._collector.done()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def oldest_wait_s(self) -> float:
        """How long the head of the queue has waited (0 when empty): the liveness signal."""
        try:
            head = self._queue._queue[0]  # type: ignore[attr-defined]
        except (AttributeError, IndexError):
            return 0.0
        return time.perf_counter() - float(head.message.received)

    async def submit(self, messages: Sequence[InputMessage]) -> list[Outcome]:
        """Queue ``messages`` (one job each) and return their verdicts or dead letters, in order."""
        if self._closed:
            raise BatcherClosed("the server is shutting down")
        loop = asyncio.get_running_loop()
        jobs: list[_Job] = []
        for message in messages:
            self._sequence += 1
            # The source position carries the job's sequence number through the pipeline, which returns
            # verdicts and dead letters in separate lists; the API strips it before answering.
            message.source = SourcePosition("api", 0, self._sequence)
            job = _Job(message, len(message.value), loop.create_future())
            jobs.append(job)
            self._queue.put_nowait(job)
        self.metrics.queue_depth.set(self._queue.qsize())
        return list(await asyncio.gather(*(j.future for j in jobs)))

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch, chars = [first], first.chars
            # Waiting for batch-mates only pays while a batch is in the pipeline: an idle one starts at
            # once (a lone chatbot reply does not sit out the window), and under load the jobs that
            # arrive during a model call join the next batch anyway.
            deadline = loop.time() + (self.max_wait_s if self._tasks else 0.0)
            while len(batch) < self.max_rows and chars < self.max_chars:
                remaining = deadline - loop.time()
                try:
                    job = (
                        self._queue.get_nowait()
                        if remaining <= 0
                        else await asyncio.wait_for(self._queue.get(), remaining)
                    )
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                batch.append(job)
                chars += job.chars
            await self._slots.acquire()
            # Jobs that arrived while a slot was busy join this batch: the wait was spent anyway.
            while len(batch) < self.max_rows and chars < self.max_chars and not self._queue.empty():
                job = self._queue.get_nowait()
                batch.append(job)
                chars += job.chars
            self.metrics.queue_depth.set(self._queue.qsize())
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Job]) -> None:
        try:
            self.metrics.batch_inputs.observe(len(batch))
            live = [j for j in batch if not j.future.done()]  # a cancelled request's jobs are skipped
            if not live:
                return
            try:
                result = await self.pipeline.process([j.message for j in live])
            except Exception as exc:  # the pipeline never raises on input; this is a bug or an outage
                log.exception("API batch of %d failed", len(live))
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(exc)
                return
            by_seq: dict[int, Outcome] = {}
            outcomes: list[Outcome] = [*result.verdicts, *result.dead_letters]
            for outcome in outcomes:
                if outcome.source is not None:
                    by_seq[outcome.source.offset] = outcome
            for job in live:
                assert job.message.source is not None
                found = by_seq.get(job.message.source.offset)
                if job.future.done():
                    continue
                if found is None:
                    job.future.set_exception(RuntimeError("the pipeline returned no outcome for a job"))
                else:
                    job.future.set_result(found)
            self.last_batch = time.monotonic()
        finally:
            self._slots.release()

    async def close(self, timeout_s: float = 20.0) -> None:
        """Stop taking jobs, finish queued and running batches (bounded), then stop the collector."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while (not self._queue.empty() or self._tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        for job in list(self._queue._queue):  # type: ignore[attr-defined]
            if not job.future.done():
                job.future.set_exception(BatcherClosed("the server is shutting down"))
