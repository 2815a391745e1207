"""Shared export steps for decoder-only checkpoints (the judge and the generative classifier).

Loads with eager attention (Gemma-2's SDPA path drops attention soft-capping, so an SDPA export
disagrees with the checkpoint), exports through optimum with past keys/values and a ``position_ids``
input (added for Gemma/Gemma-2, whose stock config lacks it), and builds prompts from the project's
own chat wrappers instead of a tokenizer's chat template.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from moderator.runtime.metadata import (
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelMetadata,
    Precision,
    Validation,
    content_hash,
    file_sizes,
    read_metadata,
    write_metadata,
)
from moderator.runtime.prompt import PromptEncoder
from onnx_export.checkpoint import load_config_and_tokenizer
from onnx_export.errors import ExportError
from onnx_export.quantize import convert_fp16, quantize_int8

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
