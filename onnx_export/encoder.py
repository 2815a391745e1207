"""Encoder sequence-classification checkpoints → ONNX (optimum) + tokenizer.json + metadata.json.

Validation tokenises with the runtime's own ``TextEncoder`` on the written ``tokenizer.json``, so the
export proves the worker's tokenisation and the checkpoint's agree, not just that the graph matches.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import (
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelMetadata,
    Precision,
    ProblemType,
    Validation,
    classifier_label_order,
    content_hash,
    file_sizes,
    judge_unsafe_column,
    label_key_for,
    multitask_label_order,
    write_metadata,
)
from moderator.runtime.tokenize import Encoded, TextEncoder, load_tokenizer, pad_rows
from onnx_export.checkpoint import load_config_and_tokenizer
from onnx_export.errors import ExportError
from onnx_export.quantize import convert_fp16, quantize_int8, save_model
from onnx_export.validate import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    INT8_TOLERANCE,
    KOREAN_SAMPLES,
    PAIR_SAMPLES,
    enforce,
    max_abs_diff,
    ort_session,
    run_ort,
)

log = logging.getLogger(__name__)

OPSET = 18
#: Architectures whose sequence-classification export optimum supports and the runtime feeds correctly.
SUPPORTED_ENCODERS = frozenset(
    {"bert", "electra", "roberta", "xlm-roberta", "distilbert", "deberta-v2", "camembert", "mpnet"}
)
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}

EncoderKind = Literal["encoder-classifier", "encoder-pair-judge", "encoder-multitask"]


def _load_checkpoint(checkpoint: Path) -> tuple[Any, Any, Any]:
    from transformers import AutoModelForSequenceClassification

    config, tokenizer = load_config_and_tokenizer(
        checkpoint,
        SUPPORTED_ENCODERS,
        family="encoder",
        other_commands=", or `judge`/`generative-classifier` for decoders",
        dir_fix="pass the directory written by save_pretrained (config.json, weights, tokenizer files)",
        tokenizer_fix="save the tokenizer next to the weights",
    )
    if len(tokenizer) > config.vocab_size:
        raise ExportError(
            checkpoint,
            f"tokenizer has {len(tokenizer)} tokens but the model embeds {config.vocab_size}",
            "save the tokenizer the model was trained with",
        )
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, dtype="float32")
    model.eval()
    return config, tokenizer, model


def _labels(config: Any, kind: EncoderKind, checkpoint: Path) -> tuple[tuple[str, ...], ProblemType]:
    names = [str(config.id2label[i]) for i in range(config.num_labels)]
    where = checkpoint / "config.json"
    try:
        if kind == "encoder-classifier":
            classifier_label_order(names, where)
            keys = tuple(cast(str, label_key_for(n)) for n in names)
            single = config.problem_type == "single_label_classification"
            return keys, ("single_label" if single else "multi_label")
        if kind == "encoder-multitask":
            multitask_label_order(names, where)
            return tuple(n.strip().lower() for n in names), "multi_label"
        judge_unsafe_column(names, where)
        return tuple(n.strip().lower() for n in names), "single_label"
    except ModelLoadError as exc:
        raise ExportError(exc.path, exc.problem, exc.fix) from exc


def _feeds(enc: Encoded, pad_id: int) -> dict[str, npt.NDArray[np.int64]]:
    ids, mask = pad_rows(enc.ids, pad_id)
    types, _ = pad_rows(enc.type_ids, 0)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _torch_logits(model: Any, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
    import inspect

    import torch

    accepted = inspect.signature(model.forward).parameters
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items() if k in accepted})
    return cast(npt.NDArray[np.float32], out.logits.float().numpy())


def _probs(logits: npt.NDArray[Any], problem_type: ProblemType, kind: EncoderKind) -> npt.NDArray[np.float64]:
    x = logits.astype(np.float64)
    if (kind != "encoder-pair-judge" and problem_type == "multi_label") or x.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-x))
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def export_encoder(
    checkpoint: Path,
    out_dir: Path,
    *,
    kind: EncoderKind,
    max_length: int,
    int8: bool = False,
    fp16: bool = False,
    name: str | None = None,
    source: str | None = None,
    sample_texts: Sequence[str] | Sequence[tuple[str, str]] | None = None,
    normalizer: str = "",
) -> Path:
    """Export a local sequence-classification checkpoint to ``out_dir`` and validate it; returns ``out_dir``.

    Writes ``model.onnx`` (+ ``model.onnx_data`` over 2 GB), ``tokenizer.json`` and ``metadata.json``.
    fp32 logits must match PyTorch within 1e-4; ``int8``/``fp16`` record their drift from fp32
    PyTorch and fail above ``INT8_TOLERANCE`` (probabilities) / ``FP16_TOLERANCE`` (logits).
    ``normalizer``: the text normaliser the checkpoint was trained with (recorded for the runtime).
    """
    from optimum.exporters.onnx import onnx_export_from_model

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if int8 and fp16:
        raise ExportError(out_dir, "--int8 and --fp16 are exclusive", "pick int8 for CPU or fp16 for CUDA")
    if kind not in ("encoder-classifier", "encoder-pair-judge", "encoder-multitask"):
        raise ExportError(
            checkpoint,
            f"unknown encoder kind {kind!r}",
            "use encoder-classifier, encoder-pair-judge or encoder-multitask",
        )
    config, tokenizer, model = _load_checkpoint(checkpoint)
    label_keys, problem_type = _labels(config, kind, checkpoint)
    limit = int(getattr(config, "max_position_embeddings", max_length)) - _POSITION_OFFSET.get(
        config.model_type, 0
    )
    if max_length > limit:
        raise ExportError(
            checkpoint / "config.json",
            f"max_length {max_length} exceeds the model's {limit} positions",
            f"pass --max-length {limit} or less",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("model.onnx*"):
        stale.unlink()
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    samples: list[Any] = (
        list(sample_texts)
        if sample_texts
        else list(PAIR_SAMPLES if kind == "encoder-pair-judge" else KOREAN_SAMPLES)
    )
    probe = ModelMetadata(
        kind=kind, model_id="", name="", source="", architecture="", opset=OPSET, dtype="fp32",
        max_length=max_length, label_keys=label_keys, validation=Validation(0, 0, 0, 0),
        vocab_size=int(config.vocab_size),
    )  # fmt: skip
    try:
        text_encoder = TextEncoder(load_tokenizer(out_dir, probe), max_length)
    except ModelLoadError as exc:
        raise ExportError(exc.path, exc.problem, exc.fix) from exc
    feeds = _feeds(text_encoder.encode(samples), pad_id)
    reference = _torch_logits(model, feeds)

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp_name:
        tmp = Path(tmp_name)
        onnx_export_from_model(model, tmp, task="text-classification", opset=OPSET, do_validation=False)
        fp32_path = tmp / MODEL_FILE
        got = run_ort(ort_session(fp32_path), feeds, ["logits"])[0]
        fp32_diff = max_abs_diff(reference, got)
        enforce(fp32_diff, FP32_TOLERANCE, "fp32 logits", fp32_path)
        dtype: Precision = "fp32"
        diff, tolerance, drift = fp32_diff, FP32_TOLERANCE, 0.0
        final = tmp / "final"
        final.mkdir()
        if int8:
            dtype = "int8"
            written = quantize_int8(fp32_path, final / MODEL_FILE)
            got = run_ort(ort_session(final / MODEL_FILE), feeds, ["logits"])[0]
            diff = max_abs_diff(reference, got)
            drift = max_abs_diff(_probs(reference, problem_type, kind), _probs(got, problem_type, kind))
            tolerance = INT8_TOLERANCE
            enforce(drift, INT8_TOLERANCE, "int8 probabilities", final / MODEL_FILE)
        elif fp16:
            dtype = "fp16"
            written = convert_fp16(fp32_path, final / MODEL_FILE)
            got = run_ort(ort_session(final / MODEL_FILE, prefer_cuda=True), feeds, ["logits"])[0]
            diff = max_abs_diff(reference, got)
            drift = max_abs_diff(_probs(reference, problem_type, kind), _probs(got, problem_type, kind))
            tolerance = FP16_TOLERANCE
            enforce(diff, FP16_TOLERANCE, "fp16 logits", final / MODEL_FILE)
        else:
            import onnx

            written = save_model(onnx.load(str(fp32_path)), final / MODEL_FILE)
        for file in written:
            shutil.move(str(final / file), str(out_dir / file))

    files = [*written, TOKENIZER_FILE]
    meta = ModelMetadata(
        kind=kind,
        model_id=content_hash(out_dir / f for f in files),
        name=name or checkpoint.name,
        source=source or str(checkpoint),
        architecture=str(config.model_type),
        opset=OPSET,
        dtype=dtype,
        max_length=max_length,
        label_keys=label_keys,
        validation=Validation(
            max_abs_diff=diff,
            tolerance=tolerance,
            samples=len(samples),
            fp32_max_abs_diff=fp32_diff,
            quantization_drift=drift,
            compared="logits" if dtype == "fp32" else "logits (drift: probabilities)",
        ),
        problem_type=problem_type,
        vocab_size=int(config.vocab_size),
        pad_token_id=int(pad_id),
        files=file_sizes(out_dir, files),
        normalizer=normalizer,
    )
    write_metadata(out_dir, meta)
    log.info("exported %s → %s (%s, max diff %.2g)", checkpoint, out_dir, dtype, diff)
    return out_dir
