"""Frozen runtime arguments shared by every model session (infinity's "frozen engine args")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Device = Literal["auto", "cuda", "cpu"]


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How sessions are created and how model batches are shaped.

    ``device``: ``cuda`` fails loudly when CUDA is not really in use, ``auto`` takes CUDA when it
    works and logs what it got, ``cpu`` never tries CUDA. Thread counts of 0 leave ONNX Runtime's
    defaults. ``max_batch_tokens`` caps rows × padded length per model call.
    """

    device: Device = "auto"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    max_batch_tokens: int = 8192
    max_batch_rows: int = 64
