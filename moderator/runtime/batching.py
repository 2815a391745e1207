"""Token-budget batch shaping: sort by length, cap padded tokens per batch, restore order.

A model batch costs ``rows × longest row`` tokens, so one long text padded against 63 short ones
wastes most of a batch. Sorting by length and closing a batch when its padded size would pass the
budget keeps the cost close to the real token count; callers scatter results back by index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens the model actually processes for ``batches`` (padding included)."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)


def run_batched(
    lengths: Sequence[int],
    options: RuntimeOptions,
    provider: str,
    run: Callable[[list[int]], R],
    scatter: Callable[[list[int], R], None],
) -> tuple[int, int]:
    """The one batched driver every model kind uses: plan → run → scatter.

    Plans token-budget batches for ``lengths`` on ``provider``, calls ``run(rows)`` per batch and
    ``scatter(rows, result)`` to put each result back at its input positions. Returns (real tokens,
    padded tokens) for the metrics.
    """
    batches = plan_batches(lengths, options.batch_tokens(provider), options.max_batch_rows)
    for rows in batches:
        scatter(rows, run(rows))
    return sum(lengths), padded_tokens(lengths, batches)
