"""Garbage-collector settings for a long-running worker or API process, applied once models are loaded.

Every record allocates a few dozen short-lived container objects (parsed JSON, records, verdicts), so
CPython's default collector (a young-generation pass every 700 allocations, a full pass every
hundred of those) walks the process's whole heap over and over: measured at ~30% of the pipeline's
time in ``bench.pipeline_micro``. What is loaded at startup (models' Python side, tokenizers,
lingua, policy, imports) lives for the whole process, so it is moved out of the collector's sight
(``gc.freeze``), and the young generation is allowed to grow to a batch's worth of records before
a pass. Reference cycles are still collected; only less often.
"""

from __future__ import annotations

import gc

#: Allocations (net of frees) between young-generation passes: a few batches of records, not 700 objects.
YOUNG_THRESHOLD = 50_000


def settle_heap(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect once, freeze what survives (startup state), and space the young passes out."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(max(young_threshold, 1), middle, old)
