"""Models that cost nothing: constant probabilities, returned instantly.

``NoopClassifier`` and ``NoopJudge`` implement the pipeline's ``TextClassifier`` / ``ReplyJudge``
protocols so the faust worker can be timed with the model cost taken out (``bench.overhead``) and the
unit tests can run the pipeline without torch or ONNX Runtime. Each counts the rows it was asked
for (``rows``). Development only: never loaded by the product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moderator.runtime.base import ClassifierOutput, JudgeOutput
from topics.labels import LABEL_KEYS


class NoopClassifier:
    """Every text: P(clean) = 0.99, every other label 0.01."""

    model_id = "bench-noop-classifier"
    provider = "none"

    def __init__(self) -> None:
        row = np.full(len(LABEL_KEYS), 0.01, dtype=np.float32)
        row[LABEL_KEYS.index("clean")] = 0.99
        self._row = row
        self.rows = 0

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        n = len(texts)
        self.rows += n
        return ClassifierOutput(np.tile(self._row, (n, 1)), [False] * n)


class NoopJudge:
    """Every (prompt, reply): P(unsafe) = 0.01."""

    model_id = "bench-noop-judge"
    provider = "none"

    def __init__(self) -> None:
        self.rows = 0

    def predict(self, pairs: Sequence[tuple[str, str]]) -> JudgeOutput:
        n = len(pairs)
        self.rows += n
        return JudgeOutput(np.full(n, 0.01, dtype=np.float32), [False] * n)
