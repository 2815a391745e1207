"""settle_heap: startup state frozen out of the collector's walks, young passes spaced out."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from moderator.heap import YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_settle_heap_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    survivor = [object() for _ in range(10)]  # a container the collector tracks, alive at settle time
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert not gc.is_finalized(survivor)


@pytest.mark.usefixtures("restore_gc")
def test_cycles_made_after_settling_are_still_collected_automatically() -> None:
    settle_heap(young_threshold=100)

    class Node:
        other: Node

    first, second = Node(), Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    del first, second
    kept = [[i] for i in range(2_000)]  # allocations, not a gc.collect(), must trigger the pass
    assert alive() is None
    assert len(kept) == 2_000
