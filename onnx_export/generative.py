"""Generative classifier (seed 002's Gemma-2 UnSmile detector) → ONNX with past keys/values.

The prompt is the seed's training format, built here rather than by a chat template:
``<bos><start_of_turn>user\\nComment: {text}<end_of_turn>\\n<start_of_turn>model\\nHate Speech:``
(the answer's fixed start is part of the prompt, so decoding begins at the first category line).
The full vocabulary head is kept: line scores need proper per-token log-probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moderator.runtime.generative_classifier import UNSMILE_GEMMA_LINES, GenerativeClassifier
from moderator.runtime.metadata import ModelMetadata
from moderator.runtime.prompt import FIELD
from onnx_export.decoder import (
    ChatFormat,
    decoder_metadata,
    export_prompted,
    generative_spec,
    prepare_decoder,
    single_token,
    staged_metadata,
)
from onnx_export.errors import ExportError
from onnx_export.validate import (
    KOREAN_SAMPLES,
    max_abs_diff,
)

log = logging.getLogger(__name__)

DEFAULT_CONTENT = "Comment: {text}"
DEFAULT_ANSWER_PREFIX = "Hate Speech:"
_END_OF_TURN = {"gemma": "<end_of_turn>", "llama3": "<|eot_id|>"}


def export_generative_classifier(
    checkpoint: Path,
    out_dir: Path,
    *,
    max_length: int = 512,
    template: Path | None = None,
    chat_format: ChatFormat | None = None,
    answer_prefix: str = DEFAULT_ANSWER_PREFIX,
    int8: bool = False,
    fp16: bool = False,
    device: str = "cpu",
    atol: float | None = None,
    name: str | None = None,
    source: str | None = None,
    samples: Sequence[str] | None = None,
) -> Path:
    """Export and validate a generative classifier into ``out_dir``; returns ``out_dir``.

    Validation: last-position logits of the worker's prefix-cached graph against PyTorch's full
    forward on the same ids (fp32 within 1e-4); int8/fp16 also record the largest change in the ten
    scores the worker reports.
    """
    content = template.read_text(encoding="utf-8") if template else DEFAULT_CONTENT
    if [m.group(1) for m in FIELD.finditer(content)] != ["text"]:
        raise ExportError(
            template or "<default>", "the template needs exactly one {text}", "fix the template"
        )
    export = prepare_decoder(
        checkpoint, out_dir, content, chat_format=chat_format, answer_prefix=answer_prefix,
        max_length=max_length, device=device, int8=int8, fp16=fp16,
    )  # fmt: skip
    tokenizer = export.tokenizer
    end = _END_OF_TURN.get(export.chat)
    end_ids = [single_token(tokenizer, end, export.checkpoint)] if end else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in end_ids:
        end_ids.append(int(tokenizer.eos_token_id))
    if not end_ids:
        raise ExportError(
            export.checkpoint, "no end-of-turn or eos token", "use a tokenizer with an eos token"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[-1]
    spec = generative_spec(
        export,
        eos_token_ids=tuple(end_ids),
        pad_token_id=int(pad),
        answer_prefix=answer_prefix,
        category_lines=dict(UNSMILE_GEMMA_LINES),
        max_new_tokens=len(UNSMILE_GEMMA_LINES),
    )
    meta = decoder_metadata(
        export,
        spec,
        kind="generative-classifier",
        name=name,
        source=source,
        label_keys=tuple(dict.fromkeys(UNSMILE_GEMMA_LINES.values())),
        problem_type="multi_label",
    )
    texts = list(samples or KOREAN_SAMPLES)
    dtype = export_prompted(
        export,
        meta,
        [{"text": t} for t in texts],
        lambda m, files, reference, suffixes: _validate(
            export.out_dir, m, files, reference, suffixes, device
        ),
        blame=template or export.checkpoint,
        atol=atol,
        what="logits",
        compared="last-position logits, prefix-cached batch (drift: the ten scores)",
    )
    log.info("exported generative classifier %s → %s (%s)", export.checkpoint, export.out_dir, dtype)
    return export.out_dir


def _validate(
    out_dir: Path,
    meta: ModelMetadata,
    files: list[str],
    reference: np.ndarray,
    suffixes: list[list[int]],
    device: str,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Max |Δ| of last-position logits (cached prefix, one mixed-length batch) and the decoded scores
    (twice: the baseline a converted graph's scores drift from is this graph's own)."""
    with staged_metadata(out_dir, meta, files, device, len(suffixes)) as (staged, options):
        model = GenerativeClassifier(out_dir, staged, options)
        prefix = model.graph.select(model._prefix, [0] * len(suffixes))
        logits, _ = model.graph.forward(prefix, suffixes)
        last = logits[np.arange(len(suffixes)), [len(s) - 1 for s in suffixes]]
        scores = np.stack([g.scores for g in model.generate_batch(suffixes)])
    return max_abs_diff(reference, last), scores, scores
