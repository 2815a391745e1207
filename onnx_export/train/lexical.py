"""Lexical branch: a hashed token uni+bigram linear model folded into the ONNX graph.

Why: on UnSmile's dev split a linear model over token n-grams is nearly as good as the fine-tuned
encoder and makes different mistakes (spelling variants of slurs, 초성 swears), so averaging the two in
logit space adds ~1-2 points of macro-F1 and LRAP. It lives inside model.onnx (Gather over
input_ids), so the worker's model seam is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

LEX_BUCKETS = 1 << 16
LEX_PRIME = 1_000_003


def lexical_features(ids: Sequence[int], vocab: int, buckets: int = LEX_BUCKETS) -> list[int]:
    """Feature ids of one tokenised row: every token id, then hashed adjacent-pair ids."""
    return [*ids, *(vocab + (a * LEX_PRIME + b) % buckets for a, b in zip(ids, ids[1:], strict=False))]


@dataclass(frozen=True)
class LexicalModel:
    """``logit = bias + sum(weight[f] for f in features) / sqrt(len(features))``."""

    weight: npt.NDArray[np.float32]  # [vocab + buckets, k]
    bias: npt.NDArray[np.float32]  # [k]
    vocab: int
    buckets: int

    def logits(self, rows: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(rows), self.weight.shape[1]), dtype=np.float32)
        for i, ids in enumerate(rows):
            f = lexical_features(ids, self.vocab, self.buckets)
            out[i] = self.weight[f].sum(axis=0) / np.sqrt(max(1, len(f))) + self.bias
        return out


def train_lexical(
    rows: Sequence[Sequence[int]],
    targets: npt.NDArray[np.float32],
    vocab: int,
    *,
    epochs: int = 10,
    lr: float = 0.02,
    l2: float = 1e-6,
    seed: int = 20240601,
    buckets: int = LEX_BUCKETS,
    mask: npt.NDArray[np.float32] | None = None,
) -> LexicalModel:
    """Logistic regression (one column per target) over the hashed features, Adam + L2, minibatches;
    ``mask`` (same shape as ``targets``) zeroes the loss of unknown targets."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    feats = [lexical_features(r, vocab, buckets) for r in rows]
    y = torch.from_numpy(targets.reshape(len(rows), -1).astype(np.float32))
    # a source that does not know a column gives it no loss (multitask targets); default: all known
    w = torch.ones_like(y) if mask is None else torch.from_numpy(mask.reshape(y.shape).astype(np.float32))
    bag = torch.nn.EmbeddingBag(vocab + buckets, y.shape[1], mode="sum")
    torch.nn.init.zeros_(bag.weight)
    bias = torch.nn.Parameter(torch.zeros(y.shape[1]))
    opt = torch.optim.Adam([bag.weight, bias], lr=lr)
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(epochs), desc="lexical", mininterval=5.0):
        perm = rng.permutation(len(rows))
        for start in range(0, len(perm), 256):
            batch = perm[start : start + 256]
            flat: list[int] = []
            offsets: list[int] = []
            weights: list[float] = []
            for i in batch:
                offsets.append(len(flat))
                flat.extend(feats[i])
                weights.extend([1.0 / math.sqrt(max(1, len(feats[i])))] * len(feats[i]))
            logit = (
                bag(torch.tensor(flat), torch.tensor(offsets), per_sample_weights=torch.tensor(weights))
                + bias
            )
            per = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[batch], reduction="none")
            loss = (per * w[batch]).sum() / w[batch].sum().clamp(min=1.0)
            loss = loss + l2 * (bag.weight**2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return LexicalModel(
        bag.weight.detach().numpy().astype(np.float32),
        bias.detach().numpy().astype(np.float32),
        vocab,
        buckets,
    )


def add_lexical_branch(
    model_path: Path,
    lex: LexicalModel,
    nn_scale: npt.NDArray[np.float32],
    nn_shift: npt.NDArray[np.float32],
    lex_scale: npt.NDArray[np.float32],
) -> None:
    """Rewrite ``logits`` as ``nn_scale * (nn_logits + nn_shift) + lex_scale * lexical_logits(input_ids)``.

    Per-column vectors; a judge with 2 columns gets its lexical "unsafe" logit in column 1 only.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from onnx_export.quantize import save_model

    model = onnx.load(str(model_path))
    g = model.graph
    out = next(o for o in g.output if o.name == "logits")
    for node in g.node:
        node.output[:] = ["nn_logits" if o == "logits" else o for o in node.output]
    k = len(nn_scale)
    w = (
        lex.weight
        if lex.weight.shape[1] == k
        else np.concatenate([np.zeros_like(lex.weight), lex.weight], axis=1)
    )
    b = lex.bias if lex.bias.shape[0] == k else np.concatenate([np.zeros_like(lex.bias), lex.bias])

    def const(name: str, arr: npt.NDArray[Any]) -> None:
        g.initializer.append(numpy_helper.from_array(arr, name))

    const("lex_weight", w.astype(np.float32))
    const("lex_bias", b.astype(np.float32))
    const("lex_nn_scale", nn_scale.astype(np.float32))
    const("lex_nn_shift", nn_shift.astype(np.float32))
    const("lex_scale", lex_scale.astype(np.float32))
    const("lex_prime", np.array(LEX_PRIME, dtype=np.int64))
    const("lex_buckets", np.array(lex.buckets, dtype=np.int64))
    const("lex_vocab", np.array(lex.vocab, dtype=np.int64))
    const("lex_axis1", np.array([1], dtype=np.int64))
    const("lex_axis2", np.array([2], dtype=np.int64))
    const("lex_zero", np.array([0], dtype=np.int64))
    const("lex_one", np.array([1], dtype=np.int64))
    const("lex_minus1", np.array([-1], dtype=np.int64))
    const("lex_end", np.array([2**62], dtype=np.int64))
    const("lex_onef", np.array(1.0, dtype=np.float32))
    n = helper.make_node
    g.node.extend(
        [
            n("Cast", ["attention_mask"], ["lex_m"], to=TensorProto.FLOAT),
            n("Slice", ["input_ids", "lex_zero", "lex_minus1", "lex_axis1"], ["lex_a"]),
            n("Slice", ["input_ids", "lex_one", "lex_end", "lex_axis1"], ["lex_b"]),
            n("Slice", ["lex_m", "lex_zero", "lex_minus1", "lex_axis1"], ["lex_ma"]),
            n("Slice", ["lex_m", "lex_one", "lex_end", "lex_axis1"], ["lex_mb"]),
            n("Mul", ["lex_ma", "lex_mb"], ["lex_mp"]),
            n("Mul", ["lex_a", "lex_prime"], ["lex_ap"]),
            n("Add", ["lex_ap", "lex_b"], ["lex_ab"]),
            n("Mod", ["lex_ab", "lex_buckets"], ["lex_h"]),
            n("Add", ["lex_h", "lex_vocab"], ["lex_hid"]),
            n("Gather", ["lex_weight", "input_ids"], ["lex_gu"], axis=0),
            n("Gather", ["lex_weight", "lex_hid"], ["lex_gb"], axis=0),
            n("Unsqueeze", ["lex_m", "lex_axis2"], ["lex_m3"]),
            n("Unsqueeze", ["lex_mp", "lex_axis2"], ["lex_mp3"]),
            n("Mul", ["lex_gu", "lex_m3"], ["lex_gum"]),
            n("Mul", ["lex_gb", "lex_mp3"], ["lex_gbm"]),
            n("ReduceSum", ["lex_gum", "lex_axis1"], ["lex_su"], keepdims=0),
            n("ReduceSum", ["lex_gbm", "lex_axis1"], ["lex_sb"], keepdims=0),
            n("ReduceSum", ["lex_m", "lex_axis1"], ["lex_nu"], keepdims=1),
            n("ReduceSum", ["lex_mp", "lex_axis1"], ["lex_nb"], keepdims=1),
            n("Add", ["lex_nu", "lex_nb"], ["lex_n"]),
            n("Max", ["lex_n", "lex_onef"], ["lex_n1"]),
            n("Sqrt", ["lex_n1"], ["lex_sq"]),
            n("Add", ["lex_su", "lex_sb"], ["lex_s"]),
            n("Div", ["lex_s", "lex_sq"], ["lex_sn"]),
            n("Add", ["lex_sn", "lex_bias"], ["lex_logits"]),
            n("Add", ["nn_logits", "lex_nn_shift"], ["lex_nns"]),
            n("Mul", ["lex_nns", "lex_nn_scale"], ["lex_nnw"]),
            n("Mul", ["lex_logits", "lex_scale"], ["lex_lw"]),
            n("Add", ["lex_nnw", "lex_lw"], [out.name]),
        ]
    )
    onnx.checker.check_model(model)
    save_model(model, model_path)


def set_lexical_weights(model_path: Path, lex_scale: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Re-weigh the branch of a model that has one, in place: per column ``lex_scale`` for the lexical
    logits and ``1 - lex_scale`` for the encoder's; returns the weights it had. Why: the weight is the
    one ship-step choice that needs no retraining to change (see ``ship multitask --lexical-weights``)."""
    import onnx
    from onnx import numpy_helper

    from onnx_export.quantize import save_model

    model = onnx.load(str(model_path))
    found = {i.name: i for i in model.graph.initializer if i.name in ("lex_scale", "lex_nn_scale")}
    if len(found) != 2:
        raise ValueError(f"{model_path} has no lexical branch (no lex_scale/lex_nn_scale weights)")
    before = numpy_helper.to_array(found["lex_scale"]).astype(np.float32)
    if before.shape != lex_scale.shape:
        raise ValueError(f"{model_path}: the branch has {before.shape[0]} columns, got {lex_scale.shape[0]}")
    found["lex_scale"].CopyFrom(numpy_helper.from_array(lex_scale.astype(np.float32), "lex_scale"))
    found["lex_nn_scale"].CopyFrom(
        numpy_helper.from_array((1.0 - lex_scale).astype(np.float32), "lex_nn_scale")
    )
    save_model(model, model_path)
    return before


#: Lexical-branch weights searched on dev (0 = the branch is left out).
LEX_WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
