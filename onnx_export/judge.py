"""Llama-Guard-style judge (KoSafeGuard-8B by default) → ONNX with past keys/values.

The judge is scored from its first generated token, so the export records the ``safe``/``unsafe``
first-token ids and can prune the LM head to those rows (``prune_head``): an 8B model's 128k-row
head becomes 2 rows and the logits tensor shrinks from B × S × 128k to B × S × 2. Validation runs the
worker's own ``GenerativeJudge`` twice (prefix-cached, batched with mixed lengths; and full prompt)
and compares both with PyTorch's full-vocabulary forward on the same token ids.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from moderator.runtime.generative_judge import GenerativeJudge
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
    prune_lm_head,
    release_torch_memory,
    save_tokenizer,
    seal_export,
    torch_last_logits,
    wrap_prompt,
)
from onnx_export.errors import ExportError
from onnx_export.validate import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    INT8_TOLERANCE,
    PAIR_SAMPLES,
    enforce,
    max_abs_diff,
)

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_TEMPLATE = TEMPLATES / "kosafeguard.txt"
VERDICTS = ("safe", "unsafe")


def read_template(path: Path) -> str:
    """A judge template: plain text with ``{instruction}`` and ``{response}`` (KoSafeGuard's by default)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(
            path, f"cannot read the prompt template ({exc})", "pass an existing --template"
        ) from exc
    fields = [m.group(1) for m in FIELD.finditer(text)]
    if sorted(fields) != ["instruction", "response"]:
        raise ExportError(
            path,
            f"a judge template needs {{instruction}} and {{response}} once each, found {fields}",
            "write the conversation slots as {instruction} and {response} (other braces are literal)",
        )
    return text


def verdict_token_ids(tokenizer: object, checkpoint: Path) -> dict[str, list[int]]:
    """First token of each verdict word as the model would generate it (no leading space)."""
    ids: dict[str, list[int]] = {}
    for word in VERDICTS:
        encoded = tokenizer.encode(word, add_special_tokens=False)  # type: ignore[attr-defined]
        if not encoded:
            raise ExportError(checkpoint, f"the tokenizer encodes {word!r} to nothing", "check the tokenizer")
        ids[word] = [int(encoded[0])]
    if ids["safe"] == ids["unsafe"]:
        raise ExportError(
            checkpoint,
            f"'safe' and 'unsafe' start with the same token {ids['safe']}: one token cannot score the verdict",
            "use a judge whose tokenizer splits the verdicts differently",
        )
    return ids


def export_judge(
    checkpoint: Path,
    out_dir: Path,
    *,
    max_length: int = 1024,
    template: Path | None = None,
    chat_format: ChatFormat | None = None,
    prune_head: bool = True,
    int8: bool = False,
    fp16: bool = False,
    device: str = "cpu",
    atol: float | None = None,
    name: str | None = None,
    source: str | None = None,
    samples: Sequence[tuple[str, str]] | None = None,
) -> Path:
    """Export and validate a causal-LM judge into ``out_dir``; returns ``out_dir``.

    ``max_length`` bounds prefix + suffix tokens; (prompt, reply) pairs are cut longest-first to fit.
    ``device="cuda"`` with ``fp16`` loads and exports the model in fp16 on the GPU (the way to export
    an 8B judge); otherwise the model is exported in fp32 and converted.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    precision = precision_of(int8, fp16)
    content = read_template(template or DEFAULT_TEMPLATE)
    loaded = load_causal_lm(checkpoint, device=device, fp16=fp16)
    config, tokenizer, model = loaded.config, loaded.tokenizer, loaded.model
    del loaded  # the model must be freeable once exported (8B weights)
    chat = chat_format or default_chat_format(config.model_type)
    check_template_tokens(tokenizer, content, chat, checkpoint)
    prefix, suffix = split_template(wrap_prompt(content, chat))
    check_length(config, max_length, checkpoint)
    verdicts = verdict_token_ids(tokenizer, checkpoint)
    rows = [*verdicts["safe"], *verdicts["unsafe"]]
    layers, kv_heads, head_dim = kv_geometry(config)
    native_fp16 = fp16 and device == "cuda"

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metadata.json").unlink(missing_ok=True)
    save_tokenizer(tokenizer, out_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    eos = tokenizer.eos_token_id
    spec = GenerativeSpec(
        prompt_prefix=prefix,
        prompt_suffix_template=suffix,
        num_layers=layers,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        past_dtype="fp16" if native_fp16 else "fp32",
        sliding_window=getattr(config, "sliding_window", None),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_ids=(int(eos),) if eos is not None else (),
        pad_token_id=int(pad),
        verdict_token_ids=verdicts,
        answer_prefix="",
        logit_rows=tuple(rows) if prune_head else (),
    )
    meta = ModelMetadata(
        kind="generative-judge",
        model_id="",
        name=name or checkpoint.name,
        source=source or str(checkpoint),
        architecture=str(config.model_type),
        opset=OPSET,
        dtype="fp16" if native_fp16 else "fp32",
        max_length=max_length,
        label_keys=("unsafe",),
        validation=Validation(0.0, 0.0, 0, 0.0),
        problem_type="single_label",
        vocab_size=int(model.get_input_embeddings().weight.shape[0]),
        pad_token_id=int(pad),
        generative=spec,
    )
    encoder = open_prompt_encoder(out_dir, prefix, suffix, max_length, template or checkpoint)
    pairs = list(samples or PAIR_SAMPLES)
    suffixes, _ = encoder.encode_values([{"instruction": p, "response": r} for p, r in pairs])
    reference = torch_last_logits(model, [[*encoder.prefix_ids, *s] for s in suffixes], rows)
    if prune_head:
        prune_lm_head(model, rows)

    tolerance = atol if atol is not None else (FP16_TOLERANCE if native_fp16 else FP32_TOLERANCE)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp_name:
        tmp = Path(tmp_name)
        export_with_past(model, tmp / "graph", device=device)
        del model
        release_torch_memory()
        files = move_graph(tmp / "graph", out_dir)
        diff, p_ref, p_got = _validate(out_dir, meta, files, reference, pairs, device)
        enforce(diff, tolerance, f"{meta.dtype} verdict logits", out_dir / files[0])
        fp32_diff, drift, dtype = diff, 0.0, meta.dtype
        if precision != "fp32" and not native_fp16:
            files = convert_graph(out_dir, files, tmp / "converted", precision)
            meta = converted_metadata(meta, precision)
            dtype = precision
            diff, _, p_got = _validate(out_dir, meta, files, reference, pairs, device)
            drift = max_abs_diff(p_ref, p_got)
            tolerance = FP16_TOLERANCE if precision == "fp16" else INT8_TOLERANCE
            enforce(
                drift if precision == "int8" else diff, tolerance, f"{precision} verdict", out_dir / files[0]
            )

    seal_export(
        out_dir,
        meta,
        files,
        Validation(
            max_abs_diff=diff,
            tolerance=tolerance,
            samples=len(pairs),
            fp32_max_abs_diff=fp32_diff,
            quantization_drift=drift,
            compared="safe/unsafe first-token logits, prefix-cached and full prompt (drift: P(unsafe))",
        ),
    )
    log.info("exported judge %s → %s (%s, max diff %.2g)", checkpoint, out_dir, dtype, diff)
    return out_dir


def _validate(
    out_dir: Path,
    meta: ModelMetadata,
    files: list[str],
    reference: np.ndarray,
    pairs: list[tuple[str, str]],
    device: str,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Max |Δ| of verdict logits for the cached and full paths, plus reference/ORT P(unsafe)."""
    staged = replace(meta, files=file_sizes(out_dir, [*files, TOKENIZER_FILE]))
    write_metadata(out_dir, staged)
    options = RuntimeOptions(
        device="cuda" if device == "cuda" else "cpu", max_batch_tokens=1 << 20, max_batch_rows=len(pairs)
    )
    try:
        diffs = []
        p_got: np.ndarray = np.zeros(0)
        p_ref: np.ndarray = np.zeros(0)
        for cached in (True, False):
            judge = GenerativeJudge(out_dir, read_metadata(out_dir), options, prefix_cache=cached)
            suffixes, _ = judge.encode_pre(pairs)
            got = judge.encode_core(suffixes)  # one batch, mixed lengths
            diffs.append(max_abs_diff(reference, got))
            if cached:
                p_got = judge.encode_post(got)
                p_ref = judge.encode_post(reference.astype(np.float32))
    finally:
        (out_dir / "metadata.json").unlink(missing_ok=True)
    return max(diffs), p_ref, p_got
