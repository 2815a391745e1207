"""Warm start: the encoder layers of a shipped int8 graph come back as the checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnx_export.encoder import export_encoder
from onnx_export.train.warmstart import onnx_encoder_state, warm_start
from tests.fixtures.models import build_encoder_checkpoint


@pytest.mark.slow
def test_per_row_int8_graph_gives_back_every_encoder_weight(tmp_path: Path) -> None:
    """The shipped graphs quantise activations per row (``MatMulIntegerToFloat``); a warm start from
    one must still find every encoder weight, the pooler and the head, within int8 rounding."""
    import torch
    from transformers import AutoModelForSequenceClassification

    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", seed=11, hidden=32, layers=2, init_range=0.1)
    # distinct biases and LayerNorm parameters, as a trained model has (the exporter merges equal
    # initialisers, and a fresh model's are all zeros or ones)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(ckpt)
    int8 = export_encoder(ckpt, tmp_path / "int8", kind="encoder-classifier", max_length=48, int8=True)
    reference = AutoModelForSequenceClassification.from_pretrained(ckpt).state_dict()

    state = onnx_encoder_state(int8 / "model.onnx")
    # the matrices (LayerNorm vectors and biases are kept in fp32 and copied as they are)
    weights = [
        k for k, v in reference.items() if v.dim() == 2 and k.startswith(("bert.encoder.", "bert.pooler."))
    ]
    for key in [*weights, "classifier.weight"]:
        want = reference[key].numpy()
        got = state[key].numpy()
        assert got.shape == want.shape, key
        # int8 per output channel: a weight moves by less than one step of its channel's scale
        step = np.abs(want).max(axis=1, keepdims=True) / 127
        assert (np.abs(got - want) <= step).all(), key

    for key in [k for k, v in reference.items() if v.dim() == 1 and k.startswith("bert.encoder.")]:
        np.testing.assert_array_equal(state[key].numpy(), reference[key].numpy(), err_msg=key)

    fresh = AutoModelForSequenceClassification.from_pretrained(ckpt)
    with torch.no_grad():
        for p in fresh.bert.encoder.parameters():
            p.zero_()
    loaded = warm_start(fresh, int8)
    assert all(k in loaded for k in weights) and "classifier.weight" in loaded
    q = fresh.state_dict()["bert.encoder.layer.1.output.dense.weight"].numpy()
    np.testing.assert_allclose(q, reference["bert.encoder.layer.1.output.dense.weight"].numpy(), atol=0.01)
