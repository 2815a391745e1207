"""``moderator score``: the worker's batching, cache, models and policy over a JSONL file, minus Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator

from moderator.core.pipeline import BatchResult, InputMessage, Pipeline
from topics import SourcePosition
from topics.records import Kind


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def score_lines(
    pipeline: Pipeline, kind: Kind, lines: Iterable[bytes], *, batch_size: int, source: str = "score"
) -> AsyncIterator[BatchResult]:
    """Yield one result per batch of ``batch_size`` lines; line numbers stand in for offsets."""
    offset = 0
    for chunk in _chunks(lines, batch_size):
        messages = []
        for raw in chunk:
            messages.append(InputMessage(kind, raw, SourcePosition(source, 0, offset)))
            offset += 1
        yield await pipeline.process(messages)
