"""Kafka's default partition of keyed records, for a whole batch of keys in a few numpy passes.

A key's partition is ``murmur2(key) & 0x7fffffff`` modulo the topic's partition count: what the Java
client, librdkafka's ``murmur2_random`` and aiokafka's ``DefaultPartitioner`` all compute, so a verdict
lands on the partition any other producer would give its id. aiokafka computes murmur2 in pure Python,
a loop per 4 key bytes (~0.9 µs a short id, with the partitioner call ~4% of the worker in
``bench.overhead``'s profile; ~0.1 µs here); here
the keys of a batch are grouped by length and hashed column by column in ``uint32`` arithmetic, which
wraps modulo 2**32 exactly as the reference masks do. ``tests/moderator/stream/test_partitioner.py``
checks it against aiokafka's function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)


def _murmur2_same_length(keys: Sequence[bytes], length: int) -> npt.NDArray[np.uint32]:
    rows = len(keys)
    data = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(rows, length)
    h = np.full(rows, (_SEED ^ length) & 0xFFFFFFFF, dtype=np.uint32)
    whole = length // 4
    if whole:
        words = np.ascontiguousarray(data[:, : whole * 4]).view("<u4")
        for column in range(whole):
            k = words[:, column] * _M
            k ^= k >> np.uint32(24)
            k *= _M
            h *= _M
            h ^= k
    tail = length % 4
    if tail:
        base = whole * 4
        if tail >= 3:
            h ^= data[:, base + 2].astype(np.uint32) << np.uint32(16)
        if tail >= 2:
            h ^= data[:, base + 1].astype(np.uint32) << np.uint32(8)
        h ^= data[:, base].astype(np.uint32)
        h *= _M
    h ^= h >> np.uint32(13)
    h *= _M
    h ^= h >> np.uint32(15)
    return h


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """Kafka's murmur2 of every key (as aiokafka's ``murmur2``: an unsigned 32-bit int)."""
    by_length: defaultdict[int, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        by_length[len(key)].append(i)
    out = [0] * len(keys)
    for length, indices in by_length.items():
        hashes = _murmur2_same_length([keys[i] for i in indices], length).tolist()
        for i, h in zip(indices, hashes, strict=True):
            out[i] = h
    return out


def default_partitions(keys: Sequence[bytes], all_partitions: Sequence[int]) -> list[int]:
    """The partition Kafka's default partitioner gives each (non-empty list of) key(s)."""
    count = len(all_partitions)
    return [all_partitions[(h & 0x7FFFFFFF) % count] for h in murmur2_many(keys)]
