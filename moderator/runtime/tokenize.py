"""Tokenizer loading and truncation-aware encoding shared by every model kind.

Texts are encoded untruncated first so the verdict can say which ones were cut; only the rows over the
model's maximum are re-encoded with truncation (``longest_first`` for pairs, so neither side vanishes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Encoding, Tokenizer

from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import TOKENIZER_FILE, ModelMetadata


def load_tokenizer(directory: Path, meta: ModelMetadata) -> Tokenizer:
    """Load ``tokenizer.json`` and refuse one whose ids would overflow the model's embedding."""
    path = directory / TOKENIZER_FILE
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise ModelLoadError(
            path,
            f"tokenizer.json cannot be read ({str(exc)[:200]})",
            "copy tokenizer.json from the export again, or re-export the model",
        ) from exc
    if meta.vocab_size and tok.get_vocab_size(with_added_tokens=True) > meta.vocab_size:
        raise ModelLoadError(
            path,
            f"tokenizer has {tok.get_vocab_size(with_added_tokens=True)} tokens but the model embeds only "
            f"{meta.vocab_size}: it belongs to another model",
            "use the tokenizer.json written by the same export as model.onnx",
        )
    tok.no_padding()
    tok.no_truncation()
    return tok


@dataclass(frozen=True, slots=True)
class Encoded:
    ids: list[list[int]]
    type_ids: list[list[int]]
    truncated: list[bool]

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def _truncating(tok: Tokenizer, max_length: int) -> Tokenizer:
    cut = Tokenizer.from_str(tok.to_str())
    cut.no_padding()
    cut.enable_truncation(max_length, strategy="longest_first")
    return cut


class TextEncoder:
    """Encodes single texts or (first, second) pairs with the model's special tokens and limit."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._cut = _truncating(tokenizer, max_length)

    def encode(self, inputs: Sequence[str] | Sequence[tuple[str, str]]) -> Encoded:
        items = list(inputs)
        encs: list[Encoding] = self.tokenizer.encode_batch(items)
        truncated = [len(e.ids) > self.max_length for e in encs]
        long_rows = [i for i, t in enumerate(truncated) if t]
        if long_rows:
            recut = self._cut.encode_batch([items[i] for i in long_rows])
            for i, enc in zip(long_rows, recut, strict=True):
                encs[i] = enc
        return Encoded([e.ids for e in encs], [e.type_ids for e in encs], truncated)

    def content_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character span of each token of each text, special tokens left out (for windowing)."""
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [e.offsets for e in encs]

    def special_tokens(self, pair: bool) -> int:
        """How many special tokens the model adds around one text or a pair."""
        processor = self.tokenizer.post_processor
        return 0 if processor is None else int(processor.num_special_tokens_to_add(pair))


def pad_rows(
    rows: Sequence[Sequence[int]], pad: int, width: int | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Right-pad ``rows`` to a matrix; returns (ids, attention mask)."""
    width = width if width is not None else max((len(r) for r in rows), default=0)
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask
