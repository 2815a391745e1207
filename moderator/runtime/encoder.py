"""Encoder models (BERT, ELECTRA, XLM-R, ...): a hate-speech classifier and a (prompt, reply) judge.

Both follow the seam in ``base``: ``encode_pre`` tokenises, ``encode_core`` runs one padded batch,
``encode_post`` turns logits into probabilities; ``predict`` plans token-budget batches and scatters
rows back into input order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.runtime.base import ClassifierOutput, JudgeOutput
from moderator.runtime.batching import Lanes, run_batched
from moderator.runtime.device_kind import calibration_matches, device_kind
from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import (
    MODEL_FILE,
    ModelMetadata,
    classifier_label_order,
    judge_unsafe_column,
)
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.session import Session, create_session, runs_on_cpu, shared_initializers
from moderator.runtime.tokenize import Encoded, TextEncoder, load_tokenizer, pad_rows
from topics.labels import LABEL_KEYS

log = logging.getLogger(__name__)

_F32 = npt.NDArray[np.float32]


def sigmoid(x: npt.NDArray[Any]) -> _F32:
    x = x.astype(np.float32)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def softmax(x: npt.NDArray[Any], axis: int = -1) -> _F32:
    x = x.astype(np.float32)
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return (z / z.sum(axis=axis, keepdims=True)).astype(np.float32)


class _EncoderModel:
    """Session + tokenizer + batching shared by the classifier and the pair judge."""

    def __init__(self, directory: Path, meta: ModelMetadata, options: RuntimeOptions) -> None:
        self.directory = directory
        self.meta = meta
        self.options = options
        self.model_id = meta.model_id
        self.encoder = TextEncoder(load_tokenizer(directory, meta), meta.max_length)
        path = directory / MODEL_FILE
        cpu_lanes = options.lanes_for("cpu")
        solo_threads = options.solo_threads(cpu_lanes) if runs_on_cpu(options) else 0
        # the solo session shares the lanes' weights; without the `onnx` package to read them there is none
        shared = shared_initializers(path) if solo_threads else None
        self.session: Session = create_session(path, options, cpu_lanes=cpu_lanes, initializers=shared)
        self.provider = self.session.provider
        #: the device kind this session computes on, the kind the thresholds were calibrated on ("": not
        #: recorded), and whether they are the same (None: not recorded)
        self.device_kind = device_kind(self.provider)
        self.calibration_device = meta.calibration_device
        self.calibration_matches = calibration_matches(directory, meta, self.device_kind)
        #: model runs at once (encode_core is safe from several threads: each run pads its own arrays)
        self.lanes = Lanes(options.lanes_for(self.provider))
        #: every lane's threads in one run, for a call that finds the lanes idle (``Lanes.map``)
        self.solo_session: Session | None = None
        if shared is not None and self.lanes.count > 1:
            self.solo_session = create_session(path, options, intra_threads=solo_threads, initializers=shared)
        self._shared_weights = shared  # the sessions use these buffers: keep them alive
        missing = {"input_ids", "attention_mask"} - set(self.session.input_names)
        if missing:
            raise ModelLoadError(
                directory / MODEL_FILE,
                f"graph lacks inputs {sorted(missing)} (has {self.session.input_names})",
                "export a sequence-classification checkpoint with `python -m onnx_export encoder`",
            )
        self.pad_id = meta.pad_token_id
        # One tiny run at load: a graph whose output does not match metadata.json fails here, with the
        # file named, instead of in the first batch of the stream.
        probe = self.encoder.encode([("probe", "probe")] if meta.kind == "encoder-pair-judge" else ["probe"])
        self.encode_post(self.encode_core(probe, [0]))

    def encode_core(
        self, enc: Encoded, rows: Sequence[int], session: Session | None = None
    ) -> npt.NDArray[Any]:
        """Run one batch of already-tokenised rows (on ``session``, default the lanes'); returns the logits."""
        run_on = session or self.session
        ids, mask = pad_rows([enc.ids[i] for i in rows], self.pad_id)
        feeds: dict[str, npt.NDArray[Any]] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in run_on.input_names:
            types, _ = pad_rows([enc.type_ids[i] for i in rows], 0)
            feeds["token_type_ids"] = types
        (logits,) = run_on.run(feeds, ["logits"])
        return logits

    def _run_all(self, enc: Encoded, width: int) -> tuple[_F32, int, int]:
        out = np.zeros((len(enc.lengths), width), dtype=np.float32)
        solo_session = self.solo_session
        solo = (
            None
            if solo_session is None
            else lambda rows: self.encode_post(self.encode_core(enc, rows, solo_session))
        )

        def scatter(rows: list[int], probs: _F32) -> None:
            out[rows] = probs

        tokens, padded = run_batched(
            enc.lengths,
            self.options,
            self.provider,
            lambda rows: self.encode_post(self.encode_core(enc, rows)),
            scatter,
            self.lanes,
            solo,
        )
        return out, tokens, padded

    def encode_post(self, logits: npt.NDArray[Any]) -> _F32:  # pragma: no cover - overridden
        raise NotImplementedError


class EncoderClassifier(_EncoderModel):
    """Ten-way hate-speech classifier: sigmoid per label (multi-label) or softmax (single-label).

    The model's output columns may be in any order and named with the English keys or UnSmile's Korean
    columns; they are permuted into ``LABEL_KEYS`` order once at load.
    """

    def __init__(self, directory: Path, meta: ModelMetadata, options: RuntimeOptions) -> None:
        self.order = classifier_label_order(meta.label_keys, directory / "metadata.json")
        super().__init__(directory, meta, options)

    def encode_post(self, logits: npt.NDArray[Any]) -> _F32:
        if logits.ndim != 2 or logits.shape[1] != len(self.order):
            raise ModelLoadError(
                self.directory / MODEL_FILE,
                f"model returns logits of shape {logits.shape} but metadata.json lists "
                f"{len(self.meta.label_keys)} labels",
                "re-export the model so metadata.json and model.onnx come from the same checkpoint",
            )
        probs = sigmoid(logits) if self.meta.problem_type == "multi_label" else softmax(logits)
        return probs[:, self.order]

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        if not texts:
            return ClassifierOutput(np.zeros((0, len(LABEL_KEYS)), np.float32), [])
        enc = self.encoder.encode(list(texts))
        probs, tokens, padded = self._run_all(enc, len(LABEL_KEYS))
        return ClassifierOutput(probs, enc.truncated, tokens, padded)


class EncoderPairJudge(_EncoderModel):
    """(user prompt, chatbot reply) cross-encoder: P(unsafe) from a 2-way softmax or one logit."""

    def __init__(self, directory: Path, meta: ModelMetadata, options: RuntimeOptions) -> None:
        self.unsafe_col = judge_unsafe_column(meta.label_keys, directory / "metadata.json")
        super().__init__(directory, meta, options)

    def encode_post(self, logits: npt.NDArray[Any]) -> _F32:
        if logits.ndim != 2 or logits.shape[1] != len(self.meta.label_keys):
            raise ModelLoadError(
                self.directory / MODEL_FILE,
                f"model returns logits of shape {logits.shape} but metadata.json lists "
                f"{len(self.meta.label_keys)} labels",
                "re-export the model so metadata.json and model.onnx come from the same checkpoint",
            )
        if logits.shape[1] == 1:
            return sigmoid(logits)
        return softmax(logits)[:, [self.unsafe_col]]

    def predict(self, pairs: Sequence[tuple[str, str]]) -> JudgeOutput:
        if not pairs:
            return JudgeOutput(np.zeros((0,), np.float32), [])
        enc = self.encoder.encode([(p, r) for p, r in pairs])
        probs, tokens, padded = self._run_all(enc, 1)
        return JudgeOutput(probs[:, 0].copy(), enc.truncated, tokens, padded)
