"""``moderator score``: the worker's batching, cache, models and policy over a JSONL file, minus Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator

from moderator.core.pipeline import BatchResult, InputMessage, Pipeline
from topics import SourcePosition
from topics.records import Kind


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    """Batches of (1-based line number, line) with blank lines skipped but still counted."""
    batch: list[tuple[int, bytes]] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        batch.append((number, line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def score_lines(
    pipeline: Pipeline, kind: Kind, lines: Iterable[bytes], *, batch_size: int, source: str = "score"
) -> AsyncIterator[BatchResult]:
    """Yield one result per batch of ``batch_size`` records.

    A record's position is ``(source, 0, its line number in the input)``, so a dead letter points at the
    line to fix (blank lines are skipped but counted, as an editor counts them).
    """
    for chunk in _chunks(lines, batch_size):
        messages = [InputMessage(kind, raw, SourcePosition(source, 0, number)) for number, raw in chunk]
        yield await pipeline.process(messages)
