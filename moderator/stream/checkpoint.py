"""The commit protocol, in one place: pin → process → emit → await broker acks → ack → (faust) commit.

Each batch's records (faust ``Message``s, tracked on the consumer) are pinned (``incref``) before the
pipeline sees them and acked only after the broker acknowledged every output record of the batch; faust
commits an offset only once every record up to it is acked. So the committed offset never passes an unsent verdict, whether the batch fails,
the worker is SIGTERMed or SIGKILLed mid-batch. Errors: ``SinkError`` (outputs not acknowledged) from
the sink; a batch not drained within ``DRAIN_TIMEOUT_S`` at shutdown is left pinned (re-delivered).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from moderator.core.pipeline import InputMessage, Pipeline
from moderator.metrics import Metrics
from moderator.stream.liveness import Liveness
from moderator.stream.sinks import VerdictSink
from topics import SourcePosition
from topics.records import Kind

log = logging.getLogger(__name__)

#: How long a SIGTERM waits for the in-flight batch to finish before giving up on it (it is then
#: re-delivered, not lost: its events were never acked).
DRAIN_TIMEOUT_S = 20.0

#: Batches of one input topic in flight at once: while one batch's verdicts wait for the broker's acks,
#: the agent already takes (and the pipeline scores) the next. 1 = strictly one batch after the other.
MAX_INFLIGHT_BATCHES = 8


@dataclass
class BatchHandler:
    """Between the stream and the pipeline: pin events, process, emit, then ack.

    Batches of one topic go through the pipeline one at a time, in order. A batch whose outputs are on
    their way to the broker no longer holds up the consumer, which hands over the next batch meanwhile
    (up to ``max_inflight`` batches per topic). Its records stay pinned until the broker acked its
    outputs, so the committed offset still never passes an unsent verdict; ``drain`` waits for all of
    them. ``pin(messages)`` holds a batch's records on the consumer (``Message.incref``) and
    ``ack(messages)`` releases them (``Message.ack(consumer)``), a batch at a time
    (``moderator.stream.adapter.pin_batch`` and ``ack_batch``).
    """

    pipeline: Pipeline
    sink: VerdictSink
    metrics: Metrics
    liveness: Liveness
    ack: Callable[[Sequence[Any]], object]
    pin: Callable[[Sequence[Any]], object]
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    max_inflight: int = MAX_INFLIGHT_BATCHES
    _pending: dict[Kind, deque[asyncio.Task[None]]] = field(default_factory=dict)
    _order: dict[Kind, asyncio.Lock] = field(default_factory=dict)
    #: per kind, resolved once the last started batch acked its records (True) or failed (False)
    _acked: dict[Kind, asyncio.Future[bool]] = field(default_factory=dict)
    #: batches a drain gave up on (still running): the next drain does not wait for them again
    _stuck: set[asyncio.Task[None]] = field(default_factory=set)
    #: fetches being handed over (``take``), and set whenever there are none
    _handing_over: int = 0
    _handed_over: asyncio.Event = field(default_factory=asyncio.Event)

    async def take(self, kind: Kind, messages: Sequence[Any], limit: int) -> None:
        """Hand over one fetch of ``kind``: batches of at most ``limit`` records, each started by
        ``handle`` (which waits while ``max_inflight`` batches are unfinished). A large fetch is many
        batches; ``drain_all`` waits for the whole hand-over, not only for the batches it has started so
        far, or a rebalance would commit before the rest of the fetch was even started."""
        self._handing_over += 1
        self._handed_over.clear()
        try:
            for start in range(0, len(messages), limit):
                await self.handle(kind, messages[start : start + limit])
        finally:
            self._handing_over -= 1
            if not self._handing_over:
                self._handed_over.set()

    async def handle(self, kind: Kind, messages: Sequence[Any]) -> None:
        """Start a batch; return once fewer than ``max_inflight`` batches of ``kind`` are unfinished.

        Raises what a finished batch raised (the consumer's fetch loop then crashes the worker). The
        batch is pinned and started before the first ``await``: a caller cancelled while it waits for
        room (a rebalance, a stop) leaves the batch running; ``drain`` waits for it.
        """
        self.pin(messages)
        pending = self._pending.setdefault(kind, deque())
        order = self._order.setdefault(kind, asyncio.Lock())
        # acks in batch order: faust commits the first run of consecutive acked offsets and checks it
        # against the committed offset only loosely, so a later batch must not ack before an earlier one
        acked_before = self._acked.get(kind)
        acked = self._acked[kind] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._run(kind, messages, order, acked_before, acked))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        pending.append(task)
        while pending and (pending[0].done() or len(pending) >= max(1, self.max_inflight)):
            first = pending[0]
            await asyncio.shield(first)
            if pending and pending[0] is first:  # ``drain`` may have cleared it meanwhile
                pending.popleft()

    async def drain_all(self) -> bool:
        """Shutdown or rebalance: every kind's in-flight batches reach the broker; False if some did not
        in time. A hand-over under way while it waits (several batches of one fetch) may start more: those
        are waited for too. While a batch an earlier drain gave up on still runs (a rebalance's drain,
        then faust's, then a shutdown's), this answers False at once instead of waiting for it again."""
        self._stuck = {task for task in self._stuck if not task.done()}
        if self._stuck:
            return False
        while self._handing_over or any(self._pending.values()):
            if not all([await self.drain(kind) for kind in list(self._pending)]):
                return False
            if self._handing_over and not any(self._pending.values()):
                # between two of a hand-over's batches: it starts the next one as soon as it runs
                try:
                    await asyncio.wait_for(asyncio.shield(self._handed_over.wait()), DRAIN_TIMEOUT_S)
                except TimeoutError:
                    log.warning("a fetch was not handed over in time; its records will be re-delivered")
                    return False
        return True

    async def drain(self, kind: Kind) -> bool:
        """Shutdown or rebalance: let the in-flight batches reach the broker so their offsets can be
        committed. Batches started meanwhile stay pending (``drain_all`` waits for them next)."""
        pending = self._pending.get(kind)
        if not pending:
            return True
        waited = list(pending)
        drained = True
        try:
            await asyncio.wait_for(
                asyncio.shield(asyncio.gather(*waited, return_exceptions=True)), DRAIN_TIMEOUT_S
            )
        except (TimeoutError, asyncio.CancelledError):
            drained = False
            self._stuck.update(task for task in waited if not task.done())
            log.warning("in-flight %s batch not drained; it will be re-delivered", kind)
        started_since = [task for task in pending if task not in waited]
        pending.clear()
        pending.extend(started_since)
        return drained

    async def _run(
        self,
        kind: Kind,
        messages: Sequence[Any],
        order: asyncio.Lock,
        acked_before: asyncio.Future[bool] | None,
        acked: asyncio.Future[bool],
    ) -> None:
        ok = False
        try:
            await self._process(kind, messages, order, acked_before)
            ok = True
        finally:
            if not acked.done():
                acked.set_result(ok)

    async def _process(
        self,
        kind: Kind,
        messages: Sequence[Any],
        order: asyncio.Lock,
        acked_before: asyncio.Future[bool] | None,
    ) -> None:
        started = time.perf_counter()
        # decoding needs no order: it runs while the batch before this one still waits for Redis
        prepared = self.pipeline.prepare(self._messages(kind, messages, started))
        async with order:
            result, settle = await self.pipeline.finish_ordered(prepared)
        # the next batch starts now (it reads this one's write-back from memory until it is written);
        # verdicts go out only once their cache and registry entries are written, as before
        await settle
        await self.sink.emit(result)
        if acked_before is not None and not await asyncio.shield(acked_before):
            # acking now would let faust commit past the failed batch's records: these stay unacked too
            raise RuntimeError(f"an earlier {kind} batch failed; this one is left unacked (re-delivered)")
        self.ack(messages)  # drop our pins: the offsets are safe to commit
        self.metrics.batch_latency.observe(time.perf_counter() - started)
        self.liveness.progress()

    def _messages(self, kind: Kind, messages: Sequence[Any], started: float) -> list[InputMessage]:
        inputs = []
        per_topic: Counter[str] = Counter()
        for msg in messages:
            per_topic[msg.topic] += 1
            value = (
                msg.value
                if isinstance(msg.value, bytes)
                else (b"" if msg.value is None else bytes(msg.value))
            )
            inputs.append(
                InputMessage(kind, value, SourcePosition(msg.topic, msg.partition, msg.offset), started)
            )
        for topic, n in per_topic.items():
            self.metrics.messages_in.labels(topic=topic).inc(n)
        return inputs
