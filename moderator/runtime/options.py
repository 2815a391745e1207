"""Frozen runtime arguments shared by every model session (infinity's "frozen engine args")."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Device = Literal["auto", "cuda", "cpu"]

CPU_BATCH_TOKENS = 512
GPU_BATCH_TOKENS = 8192


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How sessions are created and how model batches are shaped.

    ``device``: ``cuda`` fails loudly when CUDA is not really in use, ``auto`` takes CUDA when it
    works and logs what it got, ``cpu`` never tries CUDA. Thread counts of 0 leave ONNX Runtime's
    defaults. ``max_batch_tokens`` caps rows × padded length per model call; 0 picks it from where
    the session runs (``batch_tokens``). ``lanes``: model runs of one encoder session at once
    (``lanes_for``).
    """

    device: Device = "auto"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    max_batch_tokens: int = 0
    max_batch_rows: int = 64
    lanes: int = 0

    def lanes_for(self, provider: str) -> int:
        """Concurrent runs of one encoder session on ``provider``; 0 (auto) picks them from the cores.

        On CPU a short batch keeps a second intra-op thread mostly waiting: on 2 cores, two
        single-thread runs of one reply pair each, side by side, moved 1.6-1.9x the pairs of one
        two-thread run (docs/benchmarks.md, model lanes). So auto gives one lane per usable core (logical
        cores: on an SMT machine, two lanes share a physical core) with one intra-op thread each, unless
        ``intra_op_threads`` was set, which keeps the single lane that setting was sized for. A GPU runs
        one stream: one lane.
        """
        if provider != "cpu":
            return 1
        if self.lanes > 0:
            return self.lanes
        if self.intra_op_threads > 0:
            return 1
        return usable_cores()

    def solo_threads(self, lanes: int) -> int:
        """Intra-op threads of a second, "solo" session for a call that finds every lane idle (0: none).

        Only where auto picked single-thread lanes: a lone reply on one thread waits ~25% longer than on
        every lane's core (``Lanes.map``). Explicit threads mean a shape the operator sized; keep it.
        """
        return lanes if lanes > 1 and self.intra_op_threads == 0 else 0

    def session_intra_threads(self, lanes: int) -> int:
        """Intra-op threads for a session run by ``lanes`` lanes (0 = ONNX Runtime's default)."""
        if self.intra_op_threads > 0:
            return self.intra_op_threads
        return 1 if lanes > 1 else 0

    def batch_tokens(self, provider: str) -> int:
        """The padded-token cap for a session on ``provider`` ("cpu" or "cuda").

        On CPU, attention cost grows with the square of the padded length, so small, tightly sorted
        batches win: 512 tokens measured 3.3x the throughput of 8192 for the shipped classifier on 2
        cores (docs/benchmarks.md). A GPU wants large batches to fill its cores.
        """
        if self.max_batch_tokens > 0:
            return self.max_batch_tokens
        return CPU_BATCH_TOKENS if provider == "cpu" else GPU_BATCH_TOKENS


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (a container's
    ``cpus:`` limit leaves the affinity at every core of the host)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota(Path("/sys/fs/cgroup/cpu.max"))
    return max(1, min(cores, quota) if quota else cores)


def _cgroup_quota(path: Path) -> int:
    """Whole cores allowed by a cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD"); 0 = no limit."""
    try:
        quota, period = path.read_text().split()[:2]
        return 0 if quota == "max" else max(1, math.floor(int(quota) / int(period)))
    except (OSError, ValueError):
        return 0
