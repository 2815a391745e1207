"""Llama-Guard-style judge (KoSafeGuard-8B by default) → ONNX with past keys/values.

The judge is scored from its first generated token, so the export records the ``safe``/``unsafe``
first-token ids and can prune the LM head to those rows (``prune_head``): an 8B model's 128k-row
head becomes 2 rows and the logits tensor shrinks from B × S × 128k to B × S × 2. Validation runs the
worker's own ``GenerativeJudge`` twice (prefix-cached, batched with mixed lengths; and full prompt)
and compares both with PyTorch's full-vocabulary forward on the same token ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moderator.runtime.generative_judge import GenerativeJudge
from moderator.runtime.metadata import ModelMetadata
from moderator.runtime.prompt import FIELD
from onnx_export.decoder import (
    ChatFormat,
    decoder_metadata,
    export_prompted,
    generative_spec,
    prepare_decoder,
    staged_metadata,
)
from onnx_export.errors import ExportError
from onnx_export.validate import (
    PAIR_SAMPLES,
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
    content = read_template(template or DEFAULT_TEMPLATE)
    export = prepare_decoder(
        checkpoint, out_dir, content, chat_format=chat_format, max_length=max_length, device=device,
        int8=int8, fp16=fp16,
    )  # fmt: skip
    tokenizer = export.tokenizer
    verdicts = verdict_token_ids(tokenizer, export.checkpoint)
    rows = [*verdicts["safe"], *verdicts["unsafe"]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    eos = tokenizer.eos_token_id
    spec = generative_spec(
        export,
        eos_token_ids=(int(eos),) if eos is not None else (),
        pad_token_id=int(pad),
        verdict_token_ids=verdicts,
        answer_prefix="",
        logit_rows=tuple(rows) if prune_head else (),
    )
    meta = decoder_metadata(
        export,
        spec,
        kind="generative-judge",
        name=name,
        source=source,
        label_keys=("unsafe",),
        problem_type="single_label",
    )
    pairs = list(samples or PAIR_SAMPLES)
    dtype = export_prompted(
        export,
        meta,
        [{"instruction": p, "response": r} for p, r in pairs],
        lambda m, files, reference, _: _validate(export.out_dir, m, files, reference, pairs, device),
        blame=template or export.checkpoint,
        columns=rows,
        prune=prune_head,
        atol=atol,
        what="verdict logits",
        compared="safe/unsafe first-token logits, prefix-cached and full prompt (drift: P(unsafe))",
        fp16_checks_logits=True,
    )
    log.info("exported judge %s → %s (%s)", export.checkpoint, export.out_dir, dtype)
    return export.out_dir


def _validate(
    out_dir: Path,
    meta: ModelMetadata,
    files: list[str],
    reference: np.ndarray,
    pairs: list[tuple[str, str]],
    device: str,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Max |Δ| of verdict logits for the cached and full paths, plus reference/ORT P(unsafe)."""
    with staged_metadata(out_dir, meta, files, device, len(pairs)) as (staged, options):
        diffs = []
        p_got: np.ndarray = np.zeros(0)
        p_ref: np.ndarray = np.zeros(0)
        for cached in (True, False):
            judge = GenerativeJudge(out_dir, staged, options, prefix_cache=cached)
            suffixes, _ = judge.encode_pre(pairs)
            got = judge.encode_core(suffixes)  # one batch, mixed lengths
            diffs.append(max_abs_diff(reference, got))
            if cached:
                p_got = judge.encode_post(got)
                p_ref = judge.encode_post(reference.astype(np.float32))
    return max(diffs), p_ref, p_got
