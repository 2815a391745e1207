"""Start the multitask encoder from an earlier fine-tuned encoder instead of plain e5-small.

Why: on 2 shared CPU cores a fine-tune sees well under one pass over the ~50k multitask rows, and
the earlier bundled classifier's 12 layers already took five UnSmile epochs to learn Korean hate and
profanity. Starting there leaves the budget to the new outputs (safety keys, ``unsafe`` on pairs).
Two inputs are accepted: a PyTorch checkpoint directory (``build/classifier/checkpoint`` from
``python -m onnx_export.train classifier``, the reproducible path) or a shipped int8 ONNX directory
(``models/unsmile-e5-small`` from git history, or the bundled multitask model): its ``MatMulInteger``
weights, or ``MatMulIntegerToFloat`` ones in a graph with per-row activation scales, are dequantised
(``(q - zero_point) * scale``) and matched to layers by the node names torch's exporter gave them.
Only the transformer layers and the pooler are taken: the embeddings are the frozen e5 ones anyway
(the new backbone's larger vocabulary keeps them), and the head is new (18 outputs).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

_NODE = re.compile(r"^/((?:bert/(?:encoder/layer\.\d+|pooler)/[\w./]+?)|classifier)/(?:Gemm_)?MatMul_quant$")


def onnx_encoder_state(model_path: Path) -> dict[str, Any]:
    """``bert.encoder.*`` and ``bert.pooler.*`` tensors of an exported (optionally int8) encoder."""
    import onnx
    import torch
    from onnx import numpy_helper

    from onnx_export.quantize import dequantized_weight

    model = onnx.load(str(model_path))
    model_inits = {i.name: i for i in model.graph.initializer}
    init = {name: numpy_helper.to_array(i) for name, i in model_inits.items()}
    state: dict[str, Any] = {}
    for name, arr in init.items():
        if name.startswith(("bert.encoder.", "bert.pooler.", "classifier.")) and not name.endswith(
            ("_quantized", "_scale", "_zero_point")
        ):
            state[name] = torch.from_numpy(np.array(arr, dtype=np.float32))
    for node in model.graph.node:
        if node.op_type == "MatMulInteger":
            m = _NODE.match(node.name)
            if not m:
                continue
            wname, zpname = node.input[1], node.input[3]
            w = dequantized_weight(model_inits, wname, zpname, wname.replace("_quantized", "_scale"))
            key = m.group(1).replace("/dense/Gemm", "/dense").replace("/", ".") + ".weight"
            state[key] = torch.from_numpy(np.ascontiguousarray(w.T))
        elif node.op_type == "MatMulIntegerToFloat" and node.input[1] in init:
            # the per-row-activation graph (``onnx_export.quantize``): weights int8 per output channel
            key = _row_quant_key(node.name)
            if key is None:
                continue
            zpname = node.input[5] if len(node.input) > 5 else ""
            w = dequantized_weight(model_inits, node.input[1], zpname, node.input[3])  # [in, out]
            state[key] = torch.from_numpy(np.ascontiguousarray(w.T))
        elif node.op_type == "MatMul" and node.input[1] in init:
            m = re.match(r"^/(bert/(?:encoder/layer\.\d+|pooler)/[\w./]+?)/MatMul$", node.name)
            if m:
                key = m.group(1).replace("/", ".") + ".weight"
                state[key] = torch.from_numpy(np.ascontiguousarray(init[node.input[1]].astype(np.float32).T))
    return state


_ROW_QUANT = re.compile(
    r"^/(bert/(?:encoder/layer\.\d+|pooler)/[\w./]+?)/(?:Gemm_output_0_)?MatMul\w*_row_quant_matmul$"
)


def _row_quant_key(node_name: str) -> str | None:
    """State-dict key of a per-row-quantised matmul node's weight (``None``: not an encoder weight)."""
    if node_name.startswith("logits_MatMul"):
        return "classifier.weight"
    m = _ROW_QUANT.match(node_name)
    if not m:
        return None
    return m.group(1).replace("/dense/Gemm", "/dense").replace("/", ".") + ".weight"


def warm_start(model: Any, source: Path) -> list[str]:
    """Load ``source``'s encoder layers and pooler into ``model`` (a BertForSequenceClassification);
    returns the keys loaded. Refuses a source that leaves any encoder layer weight unset."""
    import torch
    from transformers import AutoModel

    if (source / "model.onnx").exists():
        state = onnx_encoder_state(source / "model.onnx")
    else:
        full = AutoModel.from_pretrained(source) if not (source / "config.json").exists() else None
        if full is None:
            from transformers import AutoModelForSequenceClassification

            full = AutoModelForSequenceClassification.from_pretrained(source)
        state = {
            k: v
            for k, v in full.state_dict().items()
            if k.startswith(("bert.encoder.", "bert.pooler.", "classifier."))
        }
    own = model.state_dict()
    wanted = [k for k in own if k.startswith("bert.encoder.")]
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} encoder tensors, e.g. {missing[:3]}")
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    with torch.no_grad():
        for k, v in loaded.items():
            own[k].copy_(v)
        # an earlier head with fewer outputs (the ten UnSmile keys first) seeds the head's first rows
        for k in ("classifier.weight", "classifier.bias"):
            if k in state and k in own and k not in loaded and state[k].shape[1:] == own[k].shape[1:]:
                n = min(state[k].shape[0], own[k].shape[0])
                own[k][:n].copy_(state[k][:n])
                loaded[k] = state[k]
    return sorted(loaded)
