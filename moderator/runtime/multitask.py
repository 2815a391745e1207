"""The shared-backbone multitask encoder: hate labels, safety categories and P(unsafe) in one pass.

One graph, 18 sigmoid outputs (``topics.MULTITASK_KEYS``): a comment is encoded as a single text, a
reply as the (user message, reply) pair, so a reply costs one forward pass instead of classifier +
judge. It also satisfies the older ``TextClassifier`` and ``ReplyJudge`` seams (the ten UnSmile
columns; the ``unsafe`` column), so ``moderator eval`` and any consumer of those keep working.

If the model was trained on normalised text (``metadata.normalizer``), the same normaliser runs here
before tokenisation; an id this worker does not know is refused at load, because feeding a model text
spelled differently from its training data silently costs accuracy.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.core.normalize import NORMALIZER_ID, normalize_text
from moderator.runtime.base import ClassifierOutput, JudgeOutput
from moderator.runtime.encoder import _EncoderModel, sigmoid
from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import METADATA_FILE, MODEL_FILE, ModelMetadata, multitask_label_order
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.tokenize import TextEncoder
from topics.labels import LABEL_KEYS, MULTITASK_KEYS

_F32 = npt.NDArray[np.float32]
UNSAFE_COLUMN = MULTITASK_KEYS.index("unsafe")
#: Columns a verdict's ``scores`` carries: the ten UnSmile keys then the seven safety keys.
SCORE_KEYS = MULTITASK_KEYS[:UNSAFE_COLUMN]


@dataclass(frozen=True, slots=True)
class MultitaskOutput:
    """``probs[i, j]``: P(``MULTITASK_KEYS[j]``) for row ``i``; ``truncated[i]``: the input was cut."""

    probs: _F32
    truncated: list[bool]
    tokens: int = 0
    padded_tokens: int = 0

    @property
    def scores(self) -> _F32:
        """The verdict's score columns (``SCORE_KEYS``)."""
        return self.probs[:, :UNSAFE_COLUMN]

    @property
    def unsafe(self) -> _F32:
        return self.probs[:, UNSAFE_COLUMN]


class EncoderMultitask(_EncoderModel):
    """``encoder-multitask`` export: comments via :meth:`score_comments`, replies via :meth:`score_replies`."""

    def __init__(self, directory: Path, meta: ModelMetadata, options: RuntimeOptions) -> None:
        self.order = multitask_label_order(meta.label_keys, directory / METADATA_FILE)
        if meta.normalizer not in ("", NORMALIZER_ID):
            raise ModelLoadError(
                directory / METADATA_FILE,
                f"the model was trained with text normaliser {meta.normalizer!r}; this worker has "
                f"{NORMALIZER_ID!r}",
                "run the worker release the model was trained with, or retrain/re-export the model",
            )
        self._normalise = meta.normalizer == NORMALIZER_ID
        super().__init__(directory, meta, options)
        # Comments are cut at the length the model was trained on (it learned that the only long
        # texts, DKTC's conversations, are threats: longer comments drift towards `violence`).
        limit = meta.comment_max_length or meta.max_length
        self.comment_encoder = TextEncoder(self.encoder.tokenizer, min(limit, meta.max_length))

    def _text(self, text: str) -> str:
        return normalize_text(text) if self._normalise else text

    def encode_post(self, logits: npt.NDArray[Any]) -> _F32:
        if logits.ndim != 2 or logits.shape[1] != len(self.order):
            raise ModelLoadError(
                self.directory / MODEL_FILE,
                f"model returns logits of shape {logits.shape} but metadata.json lists "
                f"{len(self.meta.label_keys)} labels",
                "re-export the model so metadata.json and model.onnx come from the same checkpoint",
            )
        return sigmoid(logits)[:, self.order]

    def _score(self, inputs: list[Any], encoder: TextEncoder | None = None) -> MultitaskOutput:
        if not inputs:
            return MultitaskOutput(np.zeros((0, len(MULTITASK_KEYS)), np.float32), [])
        enc = (encoder or self.encoder).encode(inputs)
        probs, tokens, padded = self._run_all(enc, len(MULTITASK_KEYS))
        return MultitaskOutput(probs, enc.truncated, tokens, padded)

    def score_comments(self, texts: Sequence[str]) -> MultitaskOutput:
        """Every output for single texts (comments)."""
        return self._score([self._text(t) for t in texts], self.comment_encoder)

    def score_replies(self, pairs: Sequence[tuple[str, str]]) -> MultitaskOutput:
        """Every output for (user message, reply) pairs: one pass per reply."""
        return self._score([(self._text(p), self._text(r)) for p, r in pairs])

    @property
    def classifier(self) -> MultitaskClassifier:
        return MultitaskClassifier(self)

    @property
    def judge(self) -> MultitaskJudge:
        return MultitaskJudge(self)


class MultitaskClassifier:
    """The ``TextClassifier`` seam over a multitask model: the ten UnSmile columns of a single text."""

    def __init__(self, multitask: EncoderMultitask) -> None:
        self.multitask = multitask
        self.model_id = multitask.model_id
        self.provider = multitask.provider
        self.lanes = multitask.lanes

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        out = self.multitask.score_comments(texts)
        probs = np.ascontiguousarray(out.probs[:, : len(LABEL_KEYS)])
        return ClassifierOutput(probs, out.truncated, out.tokens, out.padded_tokens)


class MultitaskJudge:
    """The ``ReplyJudge`` seam over a multitask model: the ``unsafe`` column of a (message, reply) pair."""

    def __init__(self, multitask: EncoderMultitask) -> None:
        self.multitask = multitask
        self.model_id = multitask.model_id
        self.provider = multitask.provider
        self.lanes = multitask.lanes

    def predict(self, pairs: Sequence[tuple[str, str]]) -> JudgeOutput:
        out = self.multitask.score_replies(pairs)
        return JudgeOutput(out.unsafe.copy(), out.truncated, out.tokens, out.padded_tokens)


_OPEN: weakref.WeakValueDictionary[tuple[str, str, str], EncoderMultitask] = weakref.WeakValueDictionary()


def open_multitask(directory: Path, meta: ModelMetadata, options: RuntimeOptions) -> EncoderMultitask:
    """One session per directory and options: the classifier and judge paths may name the same model
    (the default), and it must not be loaded twice."""
    key = (str(Path(directory).resolve()), meta.model_id, repr(options))
    model = _OPEN.get(key)
    if model is None:
        model = EncoderMultitask(directory, meta, options)
        _OPEN[key] = model
    return model
