"""The model seam the pipeline talks to.

Each model kind follows infinity's split: ``encode_pre`` tokenises (CPU, no session), ``encode_core``
runs ONNX Runtime, ``encode_post`` turns raw outputs into probabilities. ``predict`` chains the three
over token-budget batches and returns rows in input order. The pipeline only sees ``TextClassifier``
and ``ReplyJudge``; which architecture sits behind them is the loader's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class ClassifierOutput:
    """``probs[i, j]``: P(``LABEL_KEYS[j]``) for text ``i``; ``truncated[i]``: text was cut.

    ``tokens``/``padded_tokens``: real and padded tokens the model ran, for metrics.
    """

    probs: npt.NDArray[np.float32]
    truncated: list[bool]
    tokens: int = 0
    padded_tokens: int = 0


@dataclass(frozen=True, slots=True)
class JudgeOutput:
    """``unsafe[i]``: P(unsafe) for pair ``i``; ``truncated[i]``: prompt or reply was cut."""

    unsafe: npt.NDArray[np.float32]
    truncated: list[bool]
    tokens: int = 0
    padded_tokens: int = 0


@runtime_checkable
class TextClassifier(Protocol):
    """Multi-label hate-speech classifier over the ten ``topics.LABEL_KEYS``."""

    model_id: str
    provider: str

    def predict(self, texts: Sequence[str]) -> ClassifierOutput: ...


@runtime_checkable
class ReplyJudge(Protocol):
    """Safety judge: given (user message, chatbot reply), P(the reply is unsafe)."""

    model_id: str
    provider: str

    def predict(self, pairs: Sequence[tuple[str, str]]) -> JudgeOutput: ...
