"""Generative classifier (seed 002's Gemma-2 UnSmile detector) → ONNX with past keys/values.

The prompt is the seed's training format, built here rather than by a chat template:
``<bos><start_of_turn>user\\nComment: {text}<end_of_turn>\\n<start_of_turn>model\\nHate Speech:``
(the answer's fixed start is part of the prompt, so decoding begins at the first category line).
The full vocabulary head is kept: line scores need proper per-token log-probabilities.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from moderator.runtime.generative_classifier import UNSMILE_GEMMA_LINES, GenerativeClassifier
from moderator.runtime.metadata import (
    TOKENIZER_FILE,
    GenerativeSpec,
    ModelMetadata,
    Validation,
    file_sizes,
    read_metadata,
    write_metadata,
)
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.prompt import FIELD, split_template
from onnx_export.decoder import (
    OPSET,
    ChatFormat,
    check_length,
    check_template_tokens,
    convert_graph,
    converted_metadata,
    default_chat_format,
    export_with_past,
    kv_geometry,
    load_causal_lm,
    move_graph,
    open_prompt_encoder,
    precision_of,
    release_torch_memory,
    save_tokenizer,
    seal_export,
    single_token,
    torch_last_logits,
    wrap_prompt,
)
from onnx_export.errors import ExportError
from onnx_export.validate import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    INT8_TOLERANCE,
    KOREAN_SAMPLES,
    enforce,
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
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    precision = precision_of(int8, fp16)
    content = template.read_text(encoding="utf-8") if template else DEFAULT_CONTENT
    if [m.group(1) for m in FIELD.finditer(content)] != ["text"]:
        raise ExportError(
            template or "<default>", "the template needs exactly one {text}", "fix the template"
        )
    loaded = load_causal_lm(checkpoint, device=device, fp16=fp16)
    config, tokenizer, model = loaded.config, loaded.tokenizer, loaded.model
    del loaded  # the model must be freeable once exported (8B weights)
    chat = chat_format or default_chat_format(config.model_type)
    check_template_tokens(tokenizer, content, chat, checkpoint)
    prefix, suffix = split_template(wrap_prompt(content, chat) + answer_prefix)
    check_length(config, max_length, checkpoint)
    end = _END_OF_TURN.get(chat)
    end_ids = [single_token(tokenizer, end, checkpoint)] if end else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in end_ids:
        end_ids.append(int(tokenizer.eos_token_id))
    if not end_ids:
        raise ExportError(checkpoint, "no end-of-turn or eos token", "use a tokenizer with an eos token")
    layers, kv_heads, head_dim = kv_geometry(config)
    native_fp16 = fp16 and device == "cuda"

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metadata.json").unlink(missing_ok=True)
    save_tokenizer(tokenizer, out_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[-1]
    spec = GenerativeSpec(
        prompt_prefix=prefix,
        prompt_suffix_template=suffix,
        num_layers=layers,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        past_dtype="fp16" if native_fp16 else "fp32",
        sliding_window=getattr(config, "sliding_window", None),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_ids=tuple(end_ids),
        pad_token_id=int(pad),
        answer_prefix=answer_prefix,
        category_lines=dict(UNSMILE_GEMMA_LINES),
        max_new_tokens=len(UNSMILE_GEMMA_LINES),
    )
    meta = ModelMetadata(
        kind="generative-classifier",
        model_id="",
        name=name or checkpoint.name,
        source=source or str(checkpoint),
        architecture=str(config.model_type),
        opset=OPSET,
        dtype="fp16" if native_fp16 else "fp32",
        max_length=max_length,
        label_keys=tuple(dict.fromkeys(UNSMILE_GEMMA_LINES.values())),
        validation=Validation(0.0, 0.0, 0, 0.0),
        problem_type="multi_label",
        vocab_size=int(model.get_input_embeddings().weight.shape[0]),
        pad_token_id=int(pad),
        generative=spec,
    )
    encoder = open_prompt_encoder(out_dir, prefix, suffix, max_length, template or checkpoint)
    texts = list(samples or KOREAN_SAMPLES)
    suffixes, _ = encoder.encode_values([{"text": t} for t in texts])
    reference = torch_last_logits(model, [[*encoder.prefix_ids, *s] for s in suffixes])

    tolerance = atol if atol is not None else (FP16_TOLERANCE if native_fp16 else FP32_TOLERANCE)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp_name:
        tmp = Path(tmp_name)
        export_with_past(model, tmp / "graph", device=device)
        del model
        release_torch_memory()
        files = move_graph(tmp / "graph", out_dir)
        diff, scores = _validate(out_dir, meta, files, reference, suffixes, device)
        enforce(diff, tolerance, f"{meta.dtype} logits", out_dir / files[0])
        fp32_diff, drift, dtype = diff, 0.0, meta.dtype
        if precision != "fp32" and not native_fp16:
            files = convert_graph(out_dir, files, tmp / "converted", precision)
            meta = converted_metadata(meta, precision)
            dtype = precision
            diff, converted = _validate(out_dir, meta, files, reference, suffixes, device)
            drift = max_abs_diff(scores, converted)
            tolerance = FP16_TOLERANCE if precision == "fp16" else INT8_TOLERANCE
            enforce(drift, tolerance, f"{precision} scores", out_dir / files[0])

    seal_export(
        out_dir,
        meta,
        files,
        Validation(
            max_abs_diff=diff,
            tolerance=tolerance,
            samples=len(texts),
            fp32_max_abs_diff=fp32_diff,
            quantization_drift=drift,
            compared="last-position logits, prefix-cached batch (drift: the ten scores)",
        ),
    )
    log.info("exported generative classifier %s → %s (%s, max diff %.2g)", checkpoint, out_dir, dtype, diff)
    return out_dir


def _validate(
    out_dir: Path,
    meta: ModelMetadata,
    files: list[str],
    reference: np.ndarray,
    suffixes: list[list[int]],
    device: str,
) -> tuple[float, np.ndarray]:
    """Max |Δ| of last-position logits (cached prefix, one mixed-length batch) and the decoded scores."""
    write_metadata(out_dir, replace(meta, files=file_sizes(out_dir, [*files, TOKENIZER_FILE])))
    options = RuntimeOptions(
        device="cuda" if device == "cuda" else "cpu", max_batch_tokens=1 << 20, max_batch_rows=len(suffixes)
    )
    try:
        model = GenerativeClassifier(out_dir, read_metadata(out_dir), options)
        prefix = model.graph.select(model._prefix, [0] * len(suffixes))
        logits, _ = model.graph.forward(prefix, suffixes)
        last = logits[np.arange(len(suffixes)), [len(s) - 1 for s in suffixes]]
        scores = np.stack([g.scores for g in model.generate_batch(suffixes)])
    finally:
        (out_dir / "metadata.json").unlink(missing_ok=True)
    return max_abs_diff(reference, last), scores
