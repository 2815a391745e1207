"""Shared export steps for decoder-only checkpoints (the judge and the generative classifier).

Loads with eager attention (Gemma-2's SDPA path drops attention soft-capping, so an SDPA export
disagrees with the checkpoint), exports through optimum with past keys/values and a ``position_ids``
input (added for Gemma/Gemma-2, whose stock config lacks it), and builds prompts from the project's
own chat wrappers instead of a tokenizer's chat template.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from moderator.runtime.metadata import (
    MODEL_FILE,
    TOKENIZER_FILE,
    GenerativeSpec,
    ModelMetadata,
    Precision,
    Validation,
    content_hash,
    file_sizes,
    read_metadata,
    write_metadata,
)
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.prompt import PromptEncoder, split_template
from onnx_export.checkpoint import load_config_and_tokenizer
from onnx_export.errors import ExportError
from onnx_export.quantize import convert_fp16, quantize_int8
from onnx_export.validate import FP16_TOLERANCE, FP32_TOLERANCE, INT8_TOLERANCE, enforce, max_abs_diff

OPSET = 18
SUPPORTED_DECODERS = frozenset({"llama", "mistral", "qwen2", "gemma", "gemma2"})

ChatFormat = Literal["llama3", "gemma", "none"]
#: User turn + generation prompt, written out by the project (tokenizer chat templates guess).
#: Llama-3's template trims the message, so ``{content}`` is stripped before it is placed here.
CHAT_WRAPPERS: dict[str, str] = {
    "llama3": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "gemma": "<bos><start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n",
    "none": "{content}",
}
_DEFAULT_CHAT = {"llama": "llama3", "gemma": "gemma", "gemma2": "gemma"}


def default_chat_format(model_type: str) -> ChatFormat:
    fmt = _DEFAULT_CHAT.get(model_type, "none")
    return "llama3" if fmt == "llama3" else "gemma" if fmt == "gemma" else "none"


def wrap_prompt(content: str, chat_format: ChatFormat) -> str:
    """Place ``content`` (with its ``{fields}``) in the chat wrapper, trimmed like Llama-3's template."""
    return CHAT_WRAPPERS[chat_format].replace("{content}", content.strip())


@dataclass
class LoadedDecoder:
    config: Any
    tokenizer: Any
    model: Any


def load_causal_lm(checkpoint: Path, *, device: str = "cpu", fp16: bool = False) -> LoadedDecoder:
    """Load a local causal-LM checkpoint in eager attention, fp32 (or fp16 on CUDA)."""
    import torch
    from transformers import AutoModelForCausalLM

    config, tokenizer = load_config_and_tokenizer(
        checkpoint,
        SUPPORTED_DECODERS,
        family="decoder",
        other_commands=" (or `encoder` for encoder classifiers)",
        dir_fix="pass the directory written by save_pretrained (config.json, weights, tokenizer files); merge "
        "LoRA adapters into the base model first",
        tokenizer_fix="save the tokenizer files",
    )
    dtype = torch.float16 if fp16 and device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, attn_implementation="eager")
    model.eval().to(device)
    embedded = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[index]
    if len(tokenizer) > embedded:
        raise ExportError(
            checkpoint,
            f"tokenizer has {len(tokenizer)} tokens but the model embeds {embedded}",
            "save the tokenizer the model was trained with",
        )
    return LoadedDecoder(config, tokenizer, model)


def kv_geometry(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of the past tensors."""
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return int(config.num_hidden_layers), kv_heads, head_dim


def single_token(tokenizer: Any, text: str, checkpoint: Path) -> int:
    ids = tokenizer.convert_tokens_to_ids(text)
    if ids is None or ids == tokenizer.unk_token_id:
        raise ExportError(
            checkpoint,
            f"the tokenizer has no token {text!r} used by the chat format",
            "pick the chat format the model was trained with (--chat-format llama3|gemma|none)",
        )
    return int(ids)


def check_template_tokens(tokenizer: Any, template: str, chat_format: ChatFormat, checkpoint: Path) -> None:
    """Every special marker of the chat wrapper must be one token of this tokenizer."""
    import re

    for marker in re.findall(
        r"<\|[a-z_]+\|>|<bos>|<start_of_turn>|<end_of_turn>", CHAT_WRAPPERS[chat_format]
    ):
        single_token(tokenizer, marker, checkpoint)


def prune_lm_head(model: Any, rows: list[int]) -> None:
    """Keep only ``rows`` of the LM head: an 8B model's 128k-row head becomes a handful of rows.

    The head is replaced by a fresh Linear holding copies of those rows (untied from the embedding).
    """
    import torch

    head = model.get_output_embeddings()
    pruned = torch.nn.Linear(head.in_features, len(rows), bias=head.bias is not None)
    pruned = pruned.to(device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        pruned.weight.copy_(head.weight[rows])
        if head.bias is not None:
            pruned.bias.copy_(head.bias[rows])
    model.config.tie_word_embeddings = False
    model.set_output_embeddings(pruned)


def export_with_past(model: Any, out: Path, *, device: str = "cpu") -> Path:
    """optimum export of ``model`` as one graph with past inputs and ``position_ids``; returns the graph."""
    from optimum.exporters.onnx import onnx_export_from_model

    custom: dict[str, Any] | None = None
    if model.config.model_type in ("gemma", "gemma2"):
        custom = {"model": _gemma_config_with_positions(model)}
    onnx_export_from_model(
        model,
        out,
        task="text-generation-with-past",
        opset=OPSET,
        do_validation=False,
        custom_onnx_configs=custom,
        device=device,
    )
    graph = out / MODEL_FILE
    if not graph.is_file():
        raise ExportError(out, "optimum wrote no model.onnx", "report the optimum/transformers versions")
    return graph


def _gemma_config_with_positions(model: Any) -> Any:
    from optimum.exporters.onnx.model_configs import Gemma2OnnxConfig, GemmaOnnxConfig

    base = Gemma2OnnxConfig if model.config.model_type == "gemma2" else GemmaOnnxConfig

    class WithPositionIds(base):  # type: ignore[misc, valid-type]
        """Stock Gemma configs omit position_ids; a cached prefix needs them explicit."""

        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            common = dict(super().inputs)
            common["position_ids"] = {0: "batch_size", 1: "sequence_length"}
            return common

    dtype = "fp16" if str(next(model.parameters()).dtype) == "torch.float16" else "fp32"
    return WithPositionIds(
        model.config, task="text-generation", use_past=True, use_past_in_inputs=True, float_dtype=dtype
    )


def release_torch_memory() -> None:
    """After export the PyTorch model is dropped before ONNX Runtime loads the graph (8B: twice 16 GB)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def move_graph(src_dir: Path, dst_dir: Path) -> list[str]:
    """Move ``model.onnx`` and its external data (if any) into ``dst_dir``; returns the file names."""
    names = sorted(p.name for p in src_dir.glob(MODEL_FILE + "*"))
    for stale in dst_dir.glob(MODEL_FILE + "*"):
        stale.unlink()
    for name in names:
        shutil.move(str(src_dir / name), str(dst_dir / name))
    return names


def save_tokenizer(tokenizer: Any, out_dir: Path) -> None:
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))


def precision_of(int8: bool, fp16: bool) -> Precision:
    if int8 and fp16:
        raise ExportError(
            "<options>", "--int8 and --fp16 are exclusive", "pick int8 for CPU or fp16 for CUDA"
        )
    return "int8" if int8 else "fp16" if fp16 else "fp32"


def torch_last_logits(
    model: Any, rows: Sequence[Sequence[int]], columns: list[int] | None = None
) -> npt.NDArray[np.float32]:
    """PyTorch's full forward, one row at a time: the last position's logits (only ``columns``, if given).

    The reference every decoder export is validated against: unbatched, so no padding is involved.
    """
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for row in rows:
            last = model(input_ids=torch.tensor([list(row)], device=device)).logits[0, -1]
            out.append((last if columns is None else last[columns]).float().cpu().numpy())
    return np.stack(out)


def check_length(config: Any, max_length: int, checkpoint: Path) -> None:
    """``max_length`` must fit the position table and (Gemma-2) the sliding window."""
    limit = int(getattr(config, "max_position_embeddings", max_length))
    window = getattr(config, "sliding_window", None)
    if max_length > limit:
        raise ExportError(
            checkpoint / "config.json", f"max_length {max_length} > {limit} positions", "lower it"
        )
    if window and max_length > int(window):
        raise ExportError(
            checkpoint / "config.json",
            f"max_length {max_length} exceeds the sliding window {window}: right-padded suffixes past the window "
            "would attend differently from the full prompt",
            f"pass --max-length {window} or less",
        )


def open_prompt_encoder(
    out_dir: Path, prefix: str, suffix: str, max_length: int, blame: Path | str
) -> PromptEncoder:
    """The worker's prompt encoder over the tokenizer just saved in ``out_dir``."""
    from tokenizers import Tokenizer

    try:
        return PromptEncoder(Tokenizer.from_file(str(out_dir / TOKENIZER_FILE)), prefix, suffix, max_length)
    except ValueError as exc:
        raise ExportError(
            blame, str(exc), "put fixed text before the first field, or raise --max-length"
        ) from exc


def convert_graph(out_dir: Path, files: list[str], staging: Path, precision: Precision) -> list[str]:
    """Replace the fp32 graph in ``out_dir`` by its int8 or fp16 conversion; returns the new file names."""
    staging.mkdir()
    graph = out_dir / files[0]
    if precision == "int8":
        quantize_int8(graph, staging / graph.name)
    else:
        convert_fp16(graph, staging / graph.name, keep_io_types=False)
    return move_graph(staging, out_dir)


def converted_metadata(meta: ModelMetadata, precision: Precision) -> ModelMetadata:
    """``meta`` for the converted graph: its dtype, and the past keys/values dtype the graph now takes."""
    assert meta.generative is not None
    spec = replace(meta.generative, past_dtype="fp16" if precision == "fp16" else "fp32")
    return replace(meta, dtype=precision, generative=spec)


def seal_export(out_dir: Path, meta: ModelMetadata, files: list[str], validation: Validation) -> None:
    """Write the final ``metadata.json`` (content hash, file sizes, validation) and read it back."""
    all_files = [*files, TOKENIZER_FILE]
    final = replace(
        meta,
        model_id=content_hash(out_dir / f for f in all_files),
        files=file_sizes(out_dir, all_files),
        validation=validation,
    )
    write_metadata(out_dir, final)
    read_metadata(out_dir)


# ---------------------------------------------------------------- the one decoder-export recipe


@dataclass
class DecoderExport:
    """A decoder checkpoint loaded and checked, its prompt split, ``out_dir`` holding its tokenizer.

    ``prepare_decoder`` → ``generative_spec``/``decoder_metadata`` (the kind's own fields) →
    ``export_and_validate`` (graph with past keys/values, validation, optional int8/fp16 conversion,
    validation again, sealed metadata). The judge and the generative classifier differ only in what
    they pass in and in their validation callback.
    """

    checkpoint: Path
    out_dir: Path
    config: Any
    tokenizer: Any
    model: Any
    prefix: str
    suffix: str
    chat: ChatFormat
    precision: Precision
    native_fp16: bool
    device: str
    max_length: int


def prepare_decoder(
    checkpoint: Path,
    out_dir: Path,
    content: str,
    *,
    chat_format: ChatFormat | None,
    answer_prefix: str = "",
    max_length: int,
    device: str,
    int8: bool,
    fp16: bool,
) -> DecoderExport:
    """Load the checkpoint, check template and length, split the prompt, and save the tokenizer."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    precision = precision_of(int8, fp16)
    loaded = load_causal_lm(checkpoint, device=device, fp16=fp16)
    config, tokenizer = loaded.config, loaded.tokenizer
    chat = chat_format or default_chat_format(config.model_type)
    check_template_tokens(tokenizer, content, chat, checkpoint)
    prefix, suffix = split_template(wrap_prompt(content, chat) + answer_prefix)
    check_length(config, max_length, checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metadata.json").unlink(missing_ok=True)
    save_tokenizer(tokenizer, out_dir)
    export = DecoderExport(
        checkpoint, out_dir, config, tokenizer, loaded.model, prefix, suffix, chat, precision,
        native_fp16=fp16 and device == "cuda", device=device, max_length=max_length,
    )  # fmt: skip
    del loaded  # only ``export.model`` holds the weights now: it must be freeable once exported
    return export


def generative_spec(
    export: DecoderExport, *, eos_token_ids: tuple[int, ...], pad_token_id: int, **kind_fields: Any
) -> GenerativeSpec:
    """The prompt and past-key/value geometry every generative kind records, plus its own fields."""
    layers, kv_heads, head_dim = kv_geometry(export.config)
    return GenerativeSpec(
        prompt_prefix=export.prefix,
        prompt_suffix_template=export.suffix,
        num_layers=layers,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        past_dtype="fp16" if export.native_fp16 else "fp32",
        sliding_window=getattr(export.config, "sliding_window", None),
        bos_token_id=export.tokenizer.bos_token_id,
        eos_token_ids=eos_token_ids,
        pad_token_id=pad_token_id,
        **kind_fields,
    )


def decoder_metadata(
    export: DecoderExport,
    spec: GenerativeSpec,
    *,
    kind: Any,
    name: str | None,
    source: str | None,
    label_keys: tuple[str, ...],
    problem_type: Any,
) -> ModelMetadata:
    return ModelMetadata(
        kind=kind,
        model_id="",
        name=name or export.checkpoint.name,
        source=source or str(export.checkpoint),
        architecture=str(export.config.model_type),
        opset=OPSET,
        dtype="fp16" if export.native_fp16 else "fp32",
        max_length=export.max_length,
        label_keys=label_keys,
        validation=Validation(0.0, 0.0, 0, 0.0),
        problem_type=problem_type,
        vocab_size=int(export.model.get_input_embeddings().weight.shape[0]),
        pad_token_id=spec.pad_token_id,
        generative=spec,
    )


#: ``validate(meta, files)`` → (max |Δ| against PyTorch, baseline outputs, decoded outputs): the
#: baseline is what a converted graph's decoded outputs are compared with (the drift).
Validate = Callable[[ModelMetadata, list[str]], tuple[float, npt.NDArray[Any], npt.NDArray[Any]]]


def export_and_validate(
    export: DecoderExport,
    meta: ModelMetadata,
    validate: Validate,
    *,
    atol: float | None,
    what: str,
    samples: int,
    compared: str,
    fp16_checks_logits: bool = False,
) -> str:
    """Export with past keys/values, validate, convert (int8/fp16) and validate again, seal; returns the dtype.

    The fp32 (or native fp16) graph must match PyTorch within the tolerance; a converted graph must
    keep its decoded outputs within the conversion tolerance of the fp32 ones (or, with
    ``fp16_checks_logits``, an fp16 graph its logits).
    """
    out_dir, precision = export.out_dir, export.precision
    tolerance = atol if atol is not None else (FP16_TOLERANCE if export.native_fp16 else FP32_TOLERANCE)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp_name:
        tmp = Path(tmp_name)
        export_with_past(export.model, tmp / "graph", device=export.device)
        export.model = None
        release_torch_memory()
        files = move_graph(tmp / "graph", out_dir)
        diff, baseline, _ = validate(meta, files)
        enforce(diff, tolerance, f"{meta.dtype} {what}", out_dir / files[0])
        fp32_diff, drift, dtype = diff, 0.0, meta.dtype
        if precision != "fp32" and not export.native_fp16:
            files = convert_graph(out_dir, files, tmp / "converted", precision)
            meta = converted_metadata(meta, precision)
            dtype = precision
            diff, _, decoded = validate(meta, files)
            drift = max_abs_diff(baseline, decoded)
            tolerance = FP16_TOLERANCE if precision == "fp16" else INT8_TOLERANCE
            checked = diff if fp16_checks_logits and precision == "fp16" else drift
            enforce(checked, tolerance, f"{precision} {what}", out_dir / files[0])
    seal_export(
        out_dir,
        meta,
        files,
        Validation(
            max_abs_diff=diff,
            tolerance=tolerance,
            samples=samples,
            fp32_max_abs_diff=fp32_diff,
            quantization_drift=drift,
            compared=compared,
        ),
    )
    return dtype


#: ``validate(meta, files, reference, suffixes)``: ``Validate`` given the PyTorch reference logits and
#: the samples' encoded suffixes (what ``export_prompted`` computed before the export).
ValidateAgainst = Callable[
    [ModelMetadata, list[str], npt.NDArray[np.float32], list[list[int]]],
    tuple[float, npt.NDArray[Any], npt.NDArray[Any]],
]


def export_prompted(
    export: DecoderExport,
    meta: ModelMetadata,
    values: Sequence[dict[str, str]],
    validate: ValidateAgainst,
    *,
    blame: Path,
    columns: list[int] | None = None,
    prune: bool = False,
    atol: float | None,
    what: str,
    compared: str,
    fp16_checks_logits: bool = False,
) -> str:
    """Encode the samples with the worker's prompt encoder, take PyTorch's reference logits (only
    ``columns``, if given; ``prune`` then cuts the LM head to them), and ``export_and_validate``."""
    encoder = open_prompt_encoder(export.out_dir, export.prefix, export.suffix, export.max_length, blame)
    suffixes, _ = encoder.encode_values(list(values))
    reference = torch_last_logits(export.model, [[*encoder.prefix_ids, *s] for s in suffixes], columns)
    if prune:
        assert columns is not None
        prune_lm_head(export.model, columns)
    return export_and_validate(
        export,
        meta,
        lambda m, files: validate(m, files, reference, suffixes),
        atol=atol,
        what=what,
        samples=len(values),
        compared=compared,
        fp16_checks_logits=fp16_checks_logits,
    )


@contextmanager
def staged_metadata(
    out_dir: Path, meta: ModelMetadata, files: list[str], device: str, rows: int
) -> Iterator[tuple[ModelMetadata, RuntimeOptions]]:
    """``meta`` written to ``out_dir`` for the graph being validated (removed again on exit): the
    metadata as the worker reads it back, and runtime options for one batch of ``rows`` samples."""
    write_metadata(out_dir, replace(meta, files=file_sizes(out_dir, [*files, TOKENIZER_FILE])))
    options = RuntimeOptions(
        device="cuda" if device == "cuda" else "cpu", max_batch_tokens=1 << 20, max_batch_rows=rows
    )
    try:
        yield read_metadata(out_dir), options
    finally:
        (out_dir / "metadata.json").unlink(missing_ok=True)
