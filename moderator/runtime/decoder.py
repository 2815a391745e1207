"""A decoder-only ONNX graph with past keys/values, driven without transformers.

The exported graph takes ``input_ids``, ``attention_mask`` (past + new), ``position_ids`` and
``past_key_values.{i}.key/value``; it returns ``logits`` and ``present.{i}.key/value``. Contexts are
right-padded: a padded slot stays in the cache with mask 0, and positions are counted over real
tokens only (``position_ids = cumsum(mask) - 1``), so a row continues exactly where its real tokens
ended whatever the padding around it. That is what lets one cached prefix serve a whole batch of
suffixes of different lengths, and what the exact-equality tests check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import MODEL_FILE, GenerativeSpec, ModelMetadata
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.session import Feed, Session, create_session
from moderator.runtime.tokenize import pad_rows

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True, slots=True)
class Past:
    """Cached keys/values (graph order) and the mask of which cached slots are real tokens."""

    kv: list[Feed]
    mask: npt.NDArray[np.int64]

    @property
    def batch(self) -> int:
        return int(self.mask.shape[0])


class DecoderGraph:
    """Session wrapper that checks the graph's past/position inputs against the metadata."""

    def __init__(self, directory: Path, meta: ModelMetadata, options: RuntimeOptions) -> None:
        if meta.generative is None:  # read_metadata guarantees it; kept for the type checker
            raise ModelLoadError(directory / "metadata.json", "no 'generative' section", "re-export")
        self.spec: GenerativeSpec = meta.generative
        self.path = directory / MODEL_FILE
        self.session: Session = create_session(self.path, options)
        layers = range(self.spec.num_layers)
        self.past_names = [f"past_key_values.{i}.{kv}" for i in layers for kv in ("key", "value")]
        self.present_names = [f"present.{i}.{kv}" for i in layers for kv in ("key", "value")]
        if "position_ids" not in self.session.input_names:
            raise ModelLoadError(
                self.path,
                "the graph has no position_ids input, so suffixes after a cached prefix would get wrong "
                "positions (the stock optimum Gemma-2 export lacks it)",
                "re-export with `python -m onnx_export judge|generative-classifier`, which adds it",
            )
        needed = {"input_ids", "attention_mask", *self.past_names}
        missing = sorted(needed - set(self.session.input_names))
        missing += sorted({"logits", *self.present_names} - set(self.session.output_names))
        if missing:
            raise ModelLoadError(
                self.path,
                f"graph does not match metadata.json ({self.spec.num_layers} layers): missing {missing[:4]}",
                "re-export the model so metadata.json and model.onnx come from the same export",
            )
        kind = self.session.input_types[self.past_names[0]]
        if kind not in _DTYPES:
            raise ModelLoadError(self.path, f"unsupported past dtype {kind}", "export fp32 or fp16")
        self.past_dtype = _DTYPES[kind]
        self.provider = self.session.provider

    def empty(self, batch: int) -> Past:
        shape = (batch, self.spec.num_kv_heads, 0, self.spec.head_dim)
        kv: list[Feed] = [np.zeros(shape, dtype=self.past_dtype) for _ in self.past_names]
        return Past(kv, np.zeros((batch, 0), dtype=np.int64))

    def forward(
        self, past: Past, rows: Sequence[Sequence[int]], *, keep: bool = False
    ) -> tuple[npt.NDArray[np.float32], Past | None]:
        """Append ``rows`` (one token list per past row, right-padded here) and run the graph.

        Returns logits for every new position (``B × S × rows_of_head``) and, with ``keep``, the
        extended past.
        """
        if len(rows) != past.batch:
            raise ValueError(f"{len(rows)} rows for a past of batch {past.batch}")
        ids, new_mask = pad_rows(rows, self.spec.pad_token_id)
        mask = np.concatenate([past.mask, new_mask], axis=1)
        positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)[:, past.mask.shape[1] :]
        feeds: dict[str, Feed] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        feeds.update(zip(self.past_names, past.kv, strict=True))
        if not keep:
            (logits,) = self.session.run(feeds, ["logits"])
            return logits.astype(np.float32, copy=False), None
        logits, *present = self.session.run(feeds, ["logits", *self.present_names])
        return logits.astype(np.float32, copy=False), Past(list(present), mask)

    def select(self, past: Past, rows: Sequence[int] | npt.NDArray[Any]) -> Past:
        """Past rows in the order of ``rows`` (repeats allowed: one context fanned out to options)."""
        index = np.asarray(rows, dtype=np.int64)
        return Past([_host(v)[index] for v in past.kv], past.mask[index])

    def on_device(self, past: Past) -> Past:
        """Move a past that will be fed many times to where the session runs (GPU memory on CUDA)."""
        return Past([self.session.to_device(_host(v)) for v in past.kv], past.mask)


def _host(value: Feed) -> npt.NDArray[Any]:
    return value if isinstance(value, np.ndarray) else value.numpy()


def last_positions(rows: Sequence[Sequence[int]]) -> npt.NDArray[np.int64]:
    """Index of each row's last real token in a right-padded batch."""
    return np.asarray([len(r) - 1 for r in rows], dtype=np.int64)


def log_softmax(x: npt.NDArray[np.float32], axis: int = -1) -> npt.NDArray[np.float32]:
    x = x.astype(np.float32, copy=False)
    m = x.max(axis=axis, keepdims=True)
    return (x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).astype(np.float32)
